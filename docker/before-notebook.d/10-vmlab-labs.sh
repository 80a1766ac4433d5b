#!/bin/bash
# Jupyter Docker Stacks runs this before the server starts (as the notebook user): give the
# student any lab they do not have yet. Existing notebooks are never overwritten.
vmlab labs copy "${HOME}/vmlab-labs" || echo "vmlab: could not copy the labs into ${HOME}/vmlab-labs" >&2
