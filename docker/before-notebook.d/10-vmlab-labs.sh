#!/bin/bash
# Jupyter Docker Stacks' start.sh sources this just before the server starts: give the student any
# lab they do not have yet. Existing notebooks are never overwritten. Zero to JupyterHub starts
# the container as the notebook user; started as root, the copy still runs as that user.
if [ "$(id -u)" = 0 ]; then
    sudo -u "${NB_USER}" -H -- env "PATH=${PATH}" vmlab labs copy "/home/${NB_USER}/vmlab-labs" \
        || echo "vmlab: could not copy the labs into /home/${NB_USER}/vmlab-labs" >&2
else
    vmlab labs copy "${HOME}/vmlab-labs" || echo "vmlab: could not copy the labs into ${HOME}/vmlab-labs" >&2
fi
