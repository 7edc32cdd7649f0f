#!/usr/bin/env bash
# tests/control/live_commands_test.sh PUNCHLINED PUNCHCTL — punchctl's live changes of the
# relay against a running engine (control/relay_commands.h): users, secrets, peer-policy,
# drain / undrain, reload (and SIGHUP), each command's happy path and its errors with their
# exit codes, and each change seen by a real TURN client (relay_load.py probe, aioice's codec):
#   - a user added can allocate, a removed one gets 401; adding an existing name or removing a
#     missing one is refused (exit 1), a name SASLprep refuses is a usage error (exit 2); the
#     list shows names, never passwords;
#   - a REST secret added, listed by id and age (never the secret), retired; a short one is a
#     usage error, an unknown id and the last credential are refused;
#   - a deny entry added makes CreatePermission to that peer 403, removed it is allowed again;
#     a prefix with host bits set is a usage error naming the argument;
#   - drain: a new Allocate gets 508, then (relay.alternate_server reloaded in) 300 with
#     ALTERNATE-SERVER; status says DRAINING; an existing allocation keeps working; undrain;
#   - reload: what changed (a user added in the file, an in-memory one gone); a file error
#     with its key and line (exit 1) and a key that needs a restart (exit 1), nothing changed;
#     SIGHUP does the same.
# Needs root; exit 77 (skipped) otherwise or without aioice.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/../engine/interop/lab.sh"

python=/usr/bin/python3
lab_init "${1:?usage: live_commands_test.sh PUNCHLINED PUNCHCTL}" "$python" timeout
punchctl=${2:?usage: live_commands_test.sh PUNCHLINED PUNCHCTL}
if ! "$python" -c 'import aioice' 2>/dev/null; then
  echo "SKIP: aioice is not importable by $python (apt-get install python3-aioice)"
  exit 77
fi

lab_public_link
config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
cat >>"$config" <<'EOT'
users = [{ name = "alice", password = "pw-alice" }]
rest_secrets = ["live-commands-rest-secret-1"]
EOT
cp "$config" "$LAB_WORKDIR/original.toml"
lab_engine_start e "$config"
sock=$LAB_WORKDIR/punchlined.sock
failures=0
out=$LAB_WORKDIR/out
err=$LAB_WORKDIR/err

expect() {
  local what=$1 want=$2 status=0
  shift 2
  timeout 20 "$punchctl" --socket "$sock" "$@" >"$out" 2>"$err" </dev/null || status=$?
  # cat -v: an argument or a reply may hold control characters (a name SASLprep refuses).
  echo "\$ punchctl $* (exit $status)" | cat -v
  sed 's/^/  | /' "$out" "$err" | cat -v
  if [[ $status -eq $want ]]; then
    echo "ok: $what: exit $want"
  else
    echo "FAIL: $what: exit $status, expected $want"
    failures=$((failures + 1))
  fi
}
json() {
  local what=$1 expression=$2
  if "$python" -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if ($expression) else 1)" "$out"; then
    echo "ok: $what"
  else
    echo "FAIL: $what ($expression)"
    failures=$((failures + 1))
  fi
}
absent() {
  if grep -q -- "$2" "$out" "$err"; then
    echo "FAIL: $1"
    failures=$((failures + 1))
  else
    echo "ok: $1"
  fi
}
# probe WHAT EXPECTED USER PASSWORD [PEER]: a TURN client's attempt; its lines must be EXPECTED.
probe() {
  local what=$1 expected=$2 got
  got=$(ip netns exec "$(lab_ns c)" timeout 30 "$python" "$here/relay_load.py" probe \
    203.0.113.2 "$3" "$4" "${5:-198.51.100.7}" | tr '\n' ' ' | sed 's/ $//')
  if [[ $got == "$expected" ]]; then
    echo "ok: $what: $got"
  else
    echo "FAIL: $what: got '$got', expected '$expected'"
    failures=$((failures + 1))
  fi
}

echo "== users"
expect "users" 0 users
check "users lists alice with her allocations" "$out" '^alice +0$'
check "and counts the secrets" "$out" '^1 user\(s\); 1 REST secret\(s\)'
probe "carol is nobody yet" "allocate 401" carol pw-carol
echo pw-carol | timeout 20 "$punchctl" --socket "$sock" users add --name carol --password-file - >"$out" 2>"$err" ||
  { echo "FAIL: users add --password-file -"; failures=$((failures + 1)); }
check "users add says so" "$out" '^added user carol \(2 users\)$'
probe "carol, added, allocates" "allocate 0 permission 0" carol pw-carol
expect "users --json" 0 --json users list
json "users --json: names and allocations" 'r["users"] == [{"name": "alice", "allocations": 0}, {"name": "carol", "allocations": 1}]'
absent "no password in the listing" pw-carol
expect "an existing name is refused" 1 users add --name carol --password other
check "with what to type" "$err" 'user "carol" exists; to change a password, remove the user and add it again \[refused\]'
check "the hint" "$err" '^  try: punchctl users remove --name carol$'
expect "users add without a password" 2 users add --name dave
check "says how to give it" "$err" 'try: punchctl users add --name dave --password-file -'
expect "a name SASLprep refuses" 2 users add --name "$(printf 'bad\007name')" --password x
check "names the argument" "$err" 'argument "name" of /users/add: expected a non-empty name'
expect "users remove carol" 0 users remove --name carol
check "says what becomes of her allocations" "$out" 'removed user carol \(1 users\); its allocations stay until their next Refresh'
probe "carol, removed, is refused" "allocate 401" carol pw-carol
expect "a missing name is refused" 1 users remove --name carol
check "listing who there is" "$err" 'no user "carol"; the users: alice \[refused\]'
expect "an unknown users subcommand" 2 users frobnicate

echo "== secrets"
expect "secrets" 0 secrets
check "secrets lists id 1 from the file" "$out" '^ *1 +[0-9.]+s +file$'
absent "never the secret" live-commands-rest-secret
echo live-commands-rest-secret-2 | timeout 20 "$punchctl" --socket "$sock" secrets add --secret-file - >"$out" 2>"$err" ||
  { echo "FAIL: secrets add --secret-file -"; failures=$((failures + 1)); }
check "secrets add gives the id" "$out" '^accepted secret id 2 \(2 secrets\)$'
expect "secrets --json" 0 --json secrets list
json "two accepted at once, by id and age" '[s["id"] for s in r["secrets"]] == [1, 2] and r["secrets"][1]["origin"] == "punchctl" and all(s["age_s"] >= 0 for s in r["secrets"])'
absent "never the secret (json)" live-commands-rest-secret
expect "a short secret" 2 secrets add --secret short
check "says how long" "$err" 'expected a secret of at least 16 bytes, got a string of 5 bytes \[bad_argument\]'
expect "the same secret again" 1 secrets add --secret live-commands-rest-secret-2
check "names its id" "$err" 'this secret is accepted already, as id 2'
expect "retire id 1" 0 secrets retire --id 1
check "retire says what becomes of its allocations" "$out" '^retired secret id 1 \(1 secrets\)'
expect "an unknown id" 1 secrets retire --id 9
check "lists the ids" "$err" 'no secret has id 9; the ids: 2 \[refused\]'
expect "users remove alice (secret 2 remains)" 0 users remove --name alice
expect "the last credential stays" 1 secrets retire --id 2
check "says why" "$err" 'retiring secret 2 would leave the relay without credentials'

echo "== reload"
cp "$LAB_WORKDIR/original.toml" "$config"
sed -i 's/^users = .*/users = [{ name = "alice", password = "pw-alice" }, { name = "erin", password = "pw-erin" }]/' "$config"
expect "reload" 0 reload
check "reload says what changed" "$out" "^reloaded $config: changed relay.users, relay.rest_secrets$"
check "the users added" "$out" '^  users added: alice, erin$'
check "the file's secret back, punchctl's retired" "$out" '^  secrets retired: ids 2$'
probe "erin, from the file, allocates" "allocate 0 permission 0" erin pw-erin
expect "reload again" 0 --json reload
json "nothing changed the second time" 'r["changed"] == []'
cp "$config" "$LAB_WORKDIR/good.toml"
printf 'nonce_lifetime_s = 3\n' >>"$config"
line=$(wc -l <"$config")
expect "a file error" 1 reload
check "names the key and line, keeps the running config" "$err" "relay.nonce_lifetime_s \\(line $line\\): expected an integer 5..86400 \\(seconds\\), got 3; the running configuration stays \\[refused\\]"
cp "$LAB_WORKDIR/good.toml" "$config"
sed -i 's/^mbufs = 4095$/mbufs = 8191/' "$config"
printf 'allocation_lifetime_max_s = 7200\n' >>"$config"
expect "a key that needs a restart" 1 reload
check "names it; nothing changed" "$err" 'changes engine.mbufs, which only a restart applies; nothing changed'
expect "users after the refused reloads" 0 --json users
json "the running users stay" '[u["name"] for u in r["users"]] == ["alice", "erin"]'
cp "$LAB_WORKDIR/good.toml" "$config"
printf 'alternate_server = "198.51.100.20:3478"\n' >>"$config"
lines=$(wc -l <"$LAB_ENGINE_LOG")
kill -HUP "$LAB_ENGINE_PID"
lab_poll 50 eval "tail -n +$((lines + 1)) \"\$LAB_ENGINE_LOG\" | grep -q 'SIGHUP: reload'" ||
  { echo "FAIL: no answer to SIGHUP"; failures=$((failures + 1)); }
check "SIGHUP reloads: the alternate server" "$LAB_ENGINE_LOG" 'SIGHUP: reload .*"changed":\["relay.alternate_server"\]'

echo "== peer-policy"
expect "peer-policy" 0 peer-policy
check "shows the default ranges" "$out" '^ *10\.0\.0\.0/8 +private_network$'
check "and the own addresses" "$out" '^own addresses \(always refused\): 203\.0\.113\.2 203\.0\.113\.3$'
probe "198.51.100.7 allowed" "allocate 0 permission 0" alice pw-alice 198.51.100.7
expect "peer-policy add deny" 0 peer-policy add --list deny --cidr 198.51.100.0/24
check "says what the lists are" "$out" '^added 198\.51\.100\.0/24 to the deny list; deny: 198\.51\.100\.0/24; allow: -$'
probe "198.51.100.7 denied now: 403" "allocate 0 permission 403" alice pw-alice 198.51.100.7
expect "peer-policy --json" 0 --json peer-policy show
json "the deny list" 'r["deny"] == ["198.51.100.0/24"] and r["allow"] == [] and len(r["defaults"]) == 18'
expect "a prefix with host bits" 2 peer-policy add --list deny --cidr 198.51.100.7/24
check "names the argument and the error" "$err" 'argument "cidr" of /peer-policy/add: expected an address or a prefix like "10.0.0.0/8" or "fc00::/7", got "198.51.100.7/24" \(host_bits_set\)'
expect "a list that is not allow or deny" 2 peer-policy add --list block --cidr 10.0.0.0/8
expect "adding it twice" 1 peer-policy add --list deny --cidr 198.51.100.0/24
expect "removing an entry not there" 1 peer-policy remove --list allow --cidr 10.0.0.0/8
check "says what the list holds" "$err" '10\.0\.0\.0/8 is not in the allow list; it holds: none \[refused\]'
expect "peer-policy remove deny" 0 peer-policy remove --list deny --cidr 198.51.100.0/24
probe "198.51.100.7 allowed again" "allocate 0 permission 0" alice pw-alice 198.51.100.7

echo "== drain"
expect "drain" 0 drain
check "drain says where new allocations go" "$out" '^draining \(from now\): new allocations get 300 Try Alternate to 198\.51\.100\.20:3478$'
check "and what is left" "$out" '^[0-9]+ allocation\(s\) left \(lcore1 [0-9]+\)$'
probe "a new Allocate while draining: 300 to the alternate" "allocate 300 alternate-server 198.51.100.20:3478" alice pw-alice
expect "status while draining" 0 status
check "status says DRAINING" "$out" '^relay: DRAINING, [0-9]+ allocation\(s\) left \(punchctl drain\)$'
expect "drain again: the progress" 0 --json drain
json "drain --json: per core and in all, unchanged" 'r["draining"] and not r["changed"] and r["allocations"] == sum(c["allocations"] for c in r["cores"]) and r["allocations"] > 0'
cp "$LAB_WORKDIR/good.toml" "$config"
expect "reload without the alternate" 0 reload
probe "without an alternate: 508" "allocate 508" alice pw-alice
expect "undrain" 0 undrain
check "undrain says so" "$out" '^not draining any more: new allocations are accepted$'
probe "allocations again" "allocate 0 permission 0" alice pw-alice
expect "status --json" 0 --json status
json "status: not draining" 'r["relay"]["drain"]["draining"] is False'

echo "== help lists them"
expect "help" 0 help
for command in users "users add" "users remove" secrets "secrets add" "secrets retire" \
  peer-policy "peer-policy add" "peer-policy remove" drain undrain reload; do
  check "help lists $command" "$out" "^punchctl $command +/${command// //} "
done

ip netns exec "$(lab_ns c)" timeout 30 "$python" "$here/socket_client.py" binding 203.0.113.2 ||
  failures=$((failures + 1))
lab_engine_stop_checked
check "the engine counted the drained Allocates" "$LAB_ENGINE_LOG" 'turn draining_redirected +1 '
check "both kinds" "$LAB_ENGINE_LOG" 'turn draining_refused +1 '
lab_verdict
