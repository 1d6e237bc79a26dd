#!/bin/sh
# Uninstalls csr-ha: `csr_ha_setup --uninstall` with the same options ([--prefix DIR]
# [--ha-dir DIR] [--purge] [--dry-run]). An install puts a copy of this in
# <prefix>/share/csr_ha/ that knows its prefix.
exec sh "$(cd -P -- "$(dirname -- "$0")" && pwd -P)/csr_ha_setup" --uninstall "$@"
