"""What Xen does: domains, the hypercall table, scheduling and accounting."""
