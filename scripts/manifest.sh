# Sourced by install.sh and uninstall.sh, never run: what goes into <prefix>/bin and the mark on
# the cron and PATH lines they own. One list for both, so nothing install.sh adds is left behind
# by uninstall.sh. install.sh copies it to <prefix>/share/csr_ha/ beside uninstall.sh.
BINARIES="ha_server ha_api ha_event_handler create_node set_params clear_params delete_node show_node node_event"
WRAPPERS="create_node.py set_params.py clear_params.py delete_node.py show_node.py node_event.py ha_api.py"
SCRIPTS="revert_nodes.sh verify_nodes.sh debug_bundle.sh"
MARK="# csr_ha:"
