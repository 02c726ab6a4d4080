# shellcheck shell=bash
# One job: the check that blue and green can both run from a compose file (sourced by
# bluegreen.sh, never run). The deploy program checks the same rules before anything touches
# the server (components/compose_check.py); this is the server's own check, with the compose
# version it runs. See remote/README.md "Strategies".
# shellcheck disable=SC2034 # BG_ERROR is read by the callers (bluegreen.sh)

# bg_check_compose FILE: refuse compose files the two colours cannot both run from:
# a fixed container_name, or a named volume without an explicit name (compose would create
# one volume per colour project, and the data would not be shared). Sets BG_ERROR.
bg_check_compose() {
    local file=$1 config unnamed sum stamp="$BG_PROXY_DIR/compose-checked"
    # The stamp names the check's version: a file passed by an older check is checked again.
    sum="$(sha256sum -- "$file" | cut -d' ' -f1) volume-names-2"
    if [[ -f $stamp && $(cat -- "$stamp" 2>/dev/null) == "$sum" ]]; then
        return 0 # this very file passed before (compose v1 takes ~1 s to print its config)
    fi
    # Under a probe project name: compose v2 prints every volume with a `name:`, the implicit
    # ones as <project>_<volume>, where v1 prints none; so an implicit name is recognised by
    # the probe's prefix, which no compose file names a volume with.
    local probe="$PROJECT-volume-probe"
    if ! config=$(PROJECT=$probe compose_cmd "$file" config 2>&1 </dev/null); then
        BG_ERROR="compose config failed for $file: ${config:0:500}"
        return 1
    fi
    if grep -qE '^[[:space:]]+container_name:' <<<"$config"; then
        BG_ERROR="$file sets container_name: blue and green cannot both run; remove it (the scripts name the projects $BG_BASE_PROJECT-blue / -green)"
        return 1
    fi
    unnamed=$(awk -v implicit="${probe}_" '
        /^volumes:/ { inside = 1; next }
        /^[^ ]/ { if (inside && vol != "" && !ok) print vol; inside = 0; vol = "" }
        inside && /^  [^ ]/ { if (vol != "" && !ok) print vol; vol = $1; sub(/:.*/, "", vol); ok = 0; next }
        inside && /^    external:/ { ok = 1 }
        inside && /^    name:/ { n = $2; gsub(/["\047]/, "", n); if (n != implicit vol) ok = 1 }
        END { if (inside && vol != "" && !ok) print vol }
    ' <<<"$config" | tr '\n' ' ')
    if [[ -n ${unnamed// /} ]]; then
        BG_ERROR="named volume(s) ${unnamed% } in $file have no explicit 'name:': each colour would get its own empty volume. Give each one a name shared by both colours (e.g. volumes: {${unnamed%% *}: {name: ${BG_BASE_PROJECT}_${unnamed%% *}}}), or use a ./bind mount"
        return 1
    fi
    if mkdir -p -- "$BG_PROXY_DIR"; then printf '%s\n' "$sum" >"$stamp" || true; fi
    return 0
}
