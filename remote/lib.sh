# shellcheck shell=bash
# Loads the libraries of the MCP remote scripts, one concern per file under lib/ (sourced,
# never run). Each entry script sources this file from its own directory.
#
# Conventions (see remote/README.md, which is the contract):
#   - progress and errors go to stderr as "[step] message" lines;
#   - stdout carries only the single JSON result line (json_object);
#   - die CODE MESSAGE exits with one of the README's exit codes;
#   - functions return through stdout and exit codes; the globals left are the script's
#     options and the state its EXIT trap needs (temp files, paused container, lock holder).
#
# The sourcing script sets STEP (e.g. "backup") before sourcing.

MCP_LIB_DIR="$(dirname -- "${BASH_SOURCE[0]}")/lib"
# shellcheck source-path=SCRIPTDIR source=lib/log.sh
source "$MCP_LIB_DIR/log.sh"         # output, exit codes, JSON result
# shellcheck source-path=SCRIPTDIR source=lib/options.sh
source "$MCP_LIB_DIR/options.sh"     # options, --check, check_* validation
# shellcheck source-path=SCRIPTDIR source=lib/cleanup.sh
source "$MCP_LIB_DIR/cleanup.sh"     # EXIT trap, signals, temp files
# shellcheck source-path=SCRIPTDIR source=lib/lock.sh
source "$MCP_LIB_DIR/lock.sh"        # the deploy lock
# shellcheck source-path=SCRIPTDIR source=lib/compose.sh
source "$MCP_LIB_DIR/compose.sh"     # docker compose v2/v1, .env's MCP_IMAGE, the service
# shellcheck source-path=SCRIPTDIR source=lib/proxy-routes.sh
source "$MCP_LIB_DIR/proxy-routes.sh" # blue-green: the proxy's config and slot files, written and read
# shellcheck source-path=SCRIPTDIR source=lib/proxy.sh
source "$MCP_LIB_DIR/proxy.sh"       # blue-green: the proxy, the switch, the live colour's record
# shellcheck source-path=SCRIPTDIR source=lib/health.sh
source "$MCP_LIB_DIR/health.sh"      # the health check
# shellcheck source-path=SCRIPTDIR source=lib/consistency.sh
source "$MCP_LIB_DIR/consistency.sh" # --pre-backup-command, --pause-during-backup
# shellcheck source-path=SCRIPTDIR source=lib/archive.sh
source "$MCP_LIB_DIR/archive.sh"     # backup archives: write, verify, list, prune
# shellcheck source-path=SCRIPTDIR source=lib/restore.sh
source "$MCP_LIB_DIR/restore.sh"     # the swap of the deploy dir, the recreate restore
# shellcheck source-path=SCRIPTDIR source=lib/ledger.sh
source "$MCP_LIB_DIR/ledger.sh"      # the release ledger: what served, failed, was rolled back from
# shellcheck source-path=SCRIPTDIR source=lib/freeze.sh
source "$MCP_LIB_DIR/freeze.sh"      # the deploy freeze (oncall.py lock)
# shellcheck source-path=SCRIPTDIR source=lib/metrics.sh
source "$MCP_LIB_DIR/metrics.sh"     # deploy metrics: step timings and outcome of each run
