"""How a guest's page tables meet machine memory: PV direct paging, shadow paging, nested paging."""
