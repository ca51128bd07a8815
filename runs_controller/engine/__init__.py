"""Pure, I/O-free ports of the reference Go helpers whose exact output the controllers rely on."""
