"""What a guest kernel does: boot messages, the balloon driver, (later) page tables and workloads."""
