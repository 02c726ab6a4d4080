# shellcheck shell=bash
# One job: options and their validation (sourced, never run): parse_opts, --check, and one
# check_* per kind of value. Every check is on the value alone (no server state), except
# check_dir's "exists" and need_tools, which --check skips.

readonly IMAGE_EXAMPLE='ghcr.io/owner/mcp:v1.2.3 (or ghcr.io/owner/mcp@sha256:<64 hex digits>)'
# registry[:port]/path[:tag][@sha256:digest]; a tag or a digest is required (checked separately).
readonly IMAGE_RE='^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$'
readonly URL_RE='^https?://[][A-Za-z0-9._~:/?#@!&()*+,;=%-]+$'
readonly BACKUP_ID_RE='^[0-9]{8}_[0-9]{6}$'

CHECK_ONLY=0 # --check: validate the arguments, touch nothing (check_only_done)

# usage: print $USAGE (set by the script) on stdout.
usage() {
    printf '%s\n' "$USAGE"
}

# parse_opts "$@": generic long-option parser driven by the associative array OPT_VARS
# (option -> variable name). Accepts "--opt value" and "--opt=value"; --help/-h prints usage.
# Options in the associative array FLAG_VARS (if the script declares it) take no value and
# set their variable to 1.
parse_opts() {
    local opt val
    while (($#)); do
        if [[ $1 == --check ]]; then
            CHECK_ONLY=1
            shift
            continue
        fi
        if declare -p FLAG_VARS >/dev/null 2>&1 && [[ -n ${FLAG_VARS[$1]+x} ]]; then
            printf -v "${FLAG_VARS[$1]}" '%s' 1
            shift
            continue
        fi
        case $1 in
            -h | --help)
                usage
                exit 0
                ;;
            --*=*)
                opt=${1%%=*}
                val=${1#*=}
                shift
                ;;
            --*)
                opt=$1
                if [[ -z ${OPT_VARS[$opt]+x} ]]; then
                    die "$E_ARG" "unknown option: $opt (see $SCRIPT_NAME --help)"
                fi
                if (($# < 2)); then
                    die "$E_ARG" "option $opt needs a value (see $SCRIPT_NAME --help)"
                fi
                val=$2
                shift 2
                ;;
            *)
                die "$E_ARG" "unexpected argument: $(printf '%q' "$1") (options are long options, see $SCRIPT_NAME --help)"
                ;;
        esac
        if [[ -z ${OPT_VARS[$opt]+x} ]]; then
            die "$E_ARG" "unknown option: $opt (see $SCRIPT_NAME --help)"
        fi
        printf -v "${OPT_VARS[$opt]}" '%s' "$val"
    done
}

# check_only_done: with --check, the arguments were all validated (same rules as a real run):
# say so and exit 0, before the lock, stdin, docker or any file is touched.
check_only_done() {
    ((CHECK_ONLY)) || return 0
    log "check: the arguments are valid (--check: nothing was run, nothing was touched)"
    json_object '=valid' true
    exit 0
}

# shown OPT VALUE: how to quote a user value in a message.
shown() { printf '%q' "$1"; }

# require OPT VALUE EXAMPLE
require() {
    [[ -n $2 ]] || die "$E_ARG" "$1 is required (e.g. $1 $3)"
}

# check_compose_opts COMPOSE_FILE SERVICE: --compose-file and --service, given and well formed
# (every script that runs compose).
check_compose_opts() {
    require --compose-file "$1" docker-compose.production.yml
    require --service "$2" mcp-api-prod
    check_filename --compose-file "$1" docker-compose.production.yml
    check_name --service "$2" mcp-api-prod
}

# check_health_opts HEALTH_URL ATTEMPTS TIMEOUT: the health check's options, given and well
# formed (the scripts that wait for the app to answer healthy), and --health-status.
check_health_opts() {
    require --health-url "$1" http://localhost:8000/api/v1/health
    require --attempts "$2" 10
    require --timeout "$3" 60
    check_url --health-url "$1"
    check_posint --attempts "$2"
    check_posint --timeout "$3"
    health_validate
}

# require_together OPT VALUE EXAMPLE [OPT VALUE EXAMPLE...]: if any is given, all are needed.
require_together() {
    local args=("$@") i any=0 names=() missing=() examples=()
    for ((i = 0; i < ${#args[@]}; i += 3)); do
        names+=("${args[i]}")
        examples+=("${args[i]} ${args[i + 2]}")
        if [[ -n ${args[i + 1]} ]]; then any=1; else missing+=("${args[i]}"); fi
    done
    if ((any)) && ((${#missing[@]})); then
        die "$E_ARG" "options ${names[*]} go together; missing: ${missing[*]} (e.g. ${examples[*]})"
    fi
}

# check_posint OPT VALUE: positive integer (1..999999).
check_posint() {
    [[ $2 =~ ^[1-9][0-9]{0,5}$ ]] ||
        die "$E_ARG" "$1 must be a positive integer, got $(shown "$2") (e.g. $1 10)"
}

# check_nonneg_int OPT VALUE: 0..999999.
check_nonneg_int() {
    [[ $2 =~ ^(0|[1-9][0-9]{0,5})$ ]] ||
        die "$E_ARG" "$1 must be a whole number of seconds >= 0, got $(shown "$2") (e.g. $1 120)"
}

# check_dir OPT VALUE EXAMPLE: absolute, no "..", existing directory.
check_dir() {
    local opt=$1 dir=$2 example=$3
    [[ $dir == /* ]] ||
        die "$E_ARG" "$opt must be an absolute path, got $(shown "$dir") (e.g. $opt $example)"
    [[ $dir =~ ^/[A-Za-z0-9._/@+-]*$ ]] ||
        die "$E_ARG" "$opt contains unsupported characters: $(shown "$dir") (e.g. $opt $example)"
    [[ /$dir/ != */../* ]] ||
        die "$E_ARG" "$opt must not contain '..': $(shown "$dir") (e.g. $opt $example)"
    ((CHECK_ONLY)) || [[ -d $dir ]] || die "$E_MISSING" "$opt directory does not exist: $dir"
}

# check_filename OPT VALUE EXAMPLE: a plain file name, no slash.
check_filename() {
    local opt=$1 name=$2 example=$3
    [[ $name =~ ^[A-Za-z0-9._][A-Za-z0-9._-]{0,254}$ && $name != *..* && $name != . ]] ||
        die "$E_ARG" "$opt must be a plain file name (letters, digits, . _ -; no slash), got $(shown "$name") (e.g. $opt $example)"
}

# check_name OPT VALUE EXAMPLE: compose service name.
check_name() {
    [[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ ]] ||
        die "$E_ARG" "$1 must be letters, digits, . _ - , got $(shown "$2") (e.g. $1 $3)"
}

# check_project OPT VALUE: compose project name.
check_project() {
    [[ $2 =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]] ||
        die "$E_ARG" "$1 must be lower-case letters, digits, _ - , got $(shown "$2") (e.g. $1 mcp)"
}

# valid_image REF: 0 if REF is a strict image reference with a tag or a digest.
valid_image() {
    local ref=$1 last
    [[ $ref =~ $IMAGE_RE ]] || return 1
    last=${ref##*/}
    [[ $last == *:* || $last == *@sha256:* ]]
}

# check_image OPT VALUE
check_image() {
    local opt=$1 ref=$2
    if [[ $ref == *: ]]; then
        die "$E_ARG" "$opt has an empty tag: $(shown "$ref") (e.g. $opt $IMAGE_EXAMPLE)"
    fi
    valid_image "$ref" ||
        die "$E_ARG" "$opt is not a valid image reference with a tag or digest: $(shown "$ref") (e.g. $opt $IMAGE_EXAMPLE)"
}

# check_backup_id OPT VALUE ALLOW_LATEST(0|1)
check_backup_id() {
    local opt=$1 id=$2 allow_latest=${3:-0}
    if ((allow_latest)) && [[ $id == latest ]]; then
        return 0
    fi
    [[ $id =~ $BACKUP_ID_RE ]] ||
        die "$E_ARG" "$opt must be a backup id YYYYMMDD_HHMMSS$( ((allow_latest)) && printf ' or latest'), got $(shown "$id") (e.g. $opt 20251017_143025)"
}

# check_url OPT VALUE
check_url() {
    [[ $2 =~ $URL_RE ]] ||
        die "$E_ARG" "$1 must be an http(s) URL without spaces or quotes, got $(shown "$2") (e.g. $1 http://localhost:8000/api/v1/health)"
}

# check_registry OPT VALUE: host[:port]
check_registry() {
    [[ $2 =~ ^[A-Za-z0-9]+([.-][A-Za-z0-9]+)*(:[0-9]{1,5})?$ ]] ||
        die "$E_ARG" "$1 must be a registry host[:port], got $(shown "$2") (e.g. $1 ghcr.io)"
}

# check_user OPT VALUE
check_user() {
    [[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$ ]] ||
        die "$E_ARG" "$1 must be a user name (letters, digits, . _ @ + -), got $(shown "$2") (e.g. $1 deploy-bot)"
}

# default_project DIR: compose's own normalisation of the directory's base name.
default_project() {
    local name=${1%/}
    name=${name##*/}
    name=${name,,}
    name=${name//[^a-z0-9_-]/}
    [[ -n $name ]] || name=mcp
    printf '%s' "$name"
}

# need_tools TOOL...: exit 3 naming the first missing tool (nothing to do with --check: the
# tools are the server's, not the arguments).
need_tools() {
    local t
    ((!CHECK_ONLY)) || return 0
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || die "$E_MISSING" "required tool not found on this server: $t"
    done
}
