# Sourced by the install-*.sh scripts that build a virtualenv once and cache it.
#
#   cached_venv_open ROOT KEY   VENV=ROOT/KEY; holds ROOT/.lock until the script exits (one install at a
#                               time: a test run and `make run` may start together; the others wait, then
#                               reuse it). Returns 0 when VENV must be built: it is then a fresh, empty
#                               virtualenv with a current pip. Returns 1 when VENV is ready.
#   cached_venv_close           checks the installed packages and marks VENV complete.
#
# A folder without its stamp (written last) is an interrupted install and is built again.

cached_venv_open() {
    local root="$1" key="$2"
    VENV="${root}/${key}"
    mkdir -p "${root}"
    exec 9> "${root}/.lock"
    flock 9
    if [[ -f "${VENV}/.complete" ]]; then
        return 1
    fi
    rm -rf "${VENV}"
    "${PYTHON:-python3}" -m venv "${VENV}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
    return 0
}

cached_venv_close() {
    "${VENV}/bin/python" -m pip check >&2
    touch "${VENV}/.complete"
}
