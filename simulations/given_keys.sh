# Sourced by the scripts here. fedmodel refuses a key given twice among a
# command's overrides (fedmodel/config/repeated_keys.py), so a script's own
# value for a key gives way to the user's: `not_given DEFAULTS... -- USER...`
# prints, one a line, each of DEFAULTS whose key none of USER sets.
# Use: mapfile -t kept < <(not_given "${defaults[@]}" -- "$@")

# The key an override sets, as fedmodel compares them: +, ++ and ~ dropped.
override_key() {
  local key="${1%%=*}"
  key="${key#\~}"
  key="${key#+}"
  printf '%s' "${key#+}"
}

not_given() {
  local defaults=() user=() arg default given
  while (($#)) && [[ $1 != -- ]]; do
    defaults+=("$1")
    shift
  done
  (($#)) && shift
  user=("$@")
  for default in "${defaults[@]}"; do
    for given in "${user[@]}"; do
      [[ $(override_key "$given") == "$(override_key "$default")" ]] && continue 2
    done
    printf '%s\n' "$default"
  done
}
