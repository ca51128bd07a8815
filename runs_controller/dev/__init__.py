"""`runs-controller dev`: the full local stack, the sample Story and a live view of its run.

A development tool, not part of the controller's runtime: it needs the control-plane binaries
built from a source checkout (e2e/controlplane/build.sh).
"""
