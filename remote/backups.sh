#!/usr/bin/env bash
# List the backup archives, newest first, with their time, size, image and whether they
# verify (read-only: takes no lock, changes nothing).
set -euo pipefail
STEP=backups
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

USAGE="Usage: $SCRIPT_NAME --backup-dir DIR [--no-verify]

One JSON object per line on stdout, newest first (by the manifest's created_at):
{\"id\": \"20251017_143025\", \"archive\": \"DIR/${BACKUP_PREFIX}20251017_143025.tar.gz\",
 \"created_at\": \"2025-10-17T14:30:25Z\", \"size_bytes\": 12345, \"image\": \"REF\",
 \"verified\": true, \"error\": \"\"}
verified: the whole gzip stream, the tar listing and the manifest check out, as before a
restore (--no-verify skips it: verified is null); image is \"\" for a backup taken before
the first deploy.

  --backup-dir DIR   absolute, existing backup directory (e.g. /opt/mcp-backups)
  --no-verify        do not read the archives through (faster on large backups)

--check: validate the arguments only and exit 0 or 2, touching nothing; stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir/tool."

BACKUP_DIR=""
declare -A OPT_VARS=([--backup-dir]=BACKUP_DIR)
declare -A FLAG_VARS=([--no-verify]=NO_VERIFY)
NO_VERIFY=0
parse_opts "$@"

require --backup-dir "$BACKUP_DIR" /opt/mcp-backups
check_dir --backup-dir "$BACKUP_DIR" /opt/mcp-backups
BACKUP_DIR=${BACKUP_DIR%/}
[[ -n $BACKUP_DIR ]] || die "$E_ARG" "--backup-dir must not be /"
need_tools tar gzip stat
check_only_done

mapfile -t ids < <(list_backups_by_time "$BACKUP_DIR")
for ((i = ${#ids[@]} - 1; i >= 0; i--)); do
    id=${ids[i]}
    archive=$(backup_archive "$BACKUP_DIR" "$id")
    verified=null error=""
    if ((!NO_VERIFY)); then
        if error=$(verify_archive "$archive"); then verified=true; else verified=false; fi
    fi
    json_object id "$id" archive "$archive" created_at "$(backup_created_at "$archive")" \
        "=size_bytes" "$(stat -c %s -- "$archive")" image "$(backup_image "$archive")" \
        "=verified" "$verified" error "$error"
done
log "${#ids[@]} backup(s) in $BACKUP_DIR"
