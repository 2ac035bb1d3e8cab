#!/bin/sh
# One CI pipeline step that releases a build behind Switchyard, from deploy to scale-down:
#
#   1. find the live colour (most traffic) and the idle one (of RELEASE_COLOURS);
#   2. deploy the new SHA into the idle colour's own infrastructure (RELEASE_DEPLOY);
#   3. `switchyard rollout start IDLE --version SHA --endpoint ...`: the proxy moves traffic in
#      judged steps and aborts by itself when the new version is worse (webhook gates and
#      notifications from RELEASE_WEBHOOKS);
#   4. `switchyard rollout wait`: exit 1 here when the rollout was aborted (traffic is back on
#      the old colour; nothing is scaled down);
#   5. `switchyard wait-drained OLD`: nothing flows to the old colour on any replica any more;
#   6. scale the old colour down (RELEASE_SCALE_DOWN): the double-capacity window ends here,
#      not after a guessed delay.
#
# Usage: release.sh SHA
#
# Environment (the switchyard CLI also reads SWITCHYARD_ADMIN_URL and SWITCHYARD_ADMIN_TOKEN):
#   RELEASE_ENDPOINTS     required: the idle colour's endpoint URL(s), space-separated; {colour}
#                         is replaced, e.g. "http://app-{colour}.default.svc.cluster.local:3000"
#   RELEASE_DEPLOY        shell command that deploys $SHA into colour $COLOUR and returns when it
#                         is ready, e.g. for Kubernetes:
#                           kubectl set image deployment/app-$COLOUR app=registry/app:$SHA &&
#                           kubectl scale deployment/app-$COLOUR --replicas=3 &&
#                           kubectl rollout status deployment/app-$COLOUR --timeout=5m
#                         or for Compose: APP_TAG=$SHA docker compose up -d --wait app-$COLOUR
#                         (default: none, the endpoints already run the new version)
#   RELEASE_SCALE_DOWN    shell command that scales colour $OLD down once it drained, e.g.
#                           kubectl scale deployment/app-$OLD --replicas=0
#                         or: docker compose stop app-$OLD      (default: none, just report)
#   RELEASE_COLOURS       the two colours (default "blue green")
#   RELEASE_STEPS         rollout steps, e.g. "5,1m,25,2m,50,2m,100" (default: the server's)
#   RELEASE_STRATEGY      "blue-green" to switch at once and judge afterwards (default: steps)
#   RELEASE_WEBHOOKS      webhooks, space-separated EVENTS=URL, e.g.
#                           "pre-rollout=https://ci.example.com/smoke drained=https://chat/hook"
#   RELEASE_WEBHOOK_TIMEOUT  per call (default 5s)
#   RELEASE_TIMEOUT       how long the rollout may take (default 30m)
#   RELEASE_DRAIN_TIMEOUT how long the old colour may take to drain (default 10m)
#
# Exit codes: 0 released and the old colour scaled down; 1 aborted, refused or timed out;
# 2 usage error. POSIX sh; needs `switchyard` and `node` on PATH.
set -eu

say() { printf 'release: %s\n' "$*" >&2; }
die() {
	say "$1"
	exit "${2:-1}"
}

[ "$#" -eq 1 ] || die "usage: release.sh SHA" 2
SHA=$1
case $SHA in
'' | *[!A-Za-z0-9._-]*) die "SHA: \"$SHA\" is not a version (letters, digits, . _ -)" 2 ;;
esac
[ -n "${RELEASE_ENDPOINTS:-}" ] || die "RELEASE_ENDPOINTS: give the idle colour's endpoint URL(s), {colour} is replaced" 2
COLOURS=${RELEASE_COLOURS:-blue green}
ROLLOUT_TIMEOUT=${RELEASE_TIMEOUT:-30m}
DRAIN_TIMEOUT=${RELEASE_DRAIN_TIMEOUT:-10m}

# 1. The live colour has the most weight; the idle one is the other.
weights=$(switchyard status --json) || die "cannot read the routing table (switchyard status)"
LIVE=$(printf '%s' "$weights" | node -e '
let s = "";
process.stdin.on("data", (d) => (s += d)).on("end", () => {
  const j = JSON.parse(s);
  const w = (j.state ?? j).table.weights;
  const colours = process.argv[1].split(/\s+/).filter(Boolean);
  const live = colours.reduce((a, b) => ((w[b] ?? 0) > (w[a] ?? 0) ? b : a));
  if ((w[live] ?? 0) === 0) process.exit(1);
  process.stdout.write(live);
});' "$COLOURS") || die "none of $COLOURS has traffic: nothing to release against"
IDLE=
for c in $COLOURS; do
	[ "$c" = "$LIVE" ] || IDLE=$c
done
[ -n "$IDLE" ] || die "RELEASE_COLOURS: needs two colours, got \"$COLOURS\"" 2
say "live colour $LIVE, releasing $SHA into $IDLE"

# 2. The new version runs in the idle colour before Switchyard sends it anything.
if [ -n "${RELEASE_DEPLOY:-}" ]; then
	say "deploying $SHA into $IDLE"
	COLOUR=$IDLE SHA=$SHA sh -c "$RELEASE_DEPLOY" || die "RELEASE_DEPLOY failed: nothing was released"
fi

# 3. Start the rollout: registers the version and endpoints in the idle pool, then moves traffic.
set -- rollout start "$IDLE" --version "$SHA" --baseline "$LIVE"
for e in $RELEASE_ENDPOINTS; do
	set -- "$@" --endpoint "$(printf '%s' "$e" | sed "s/{colour}/$IDLE/g")"
done
[ -z "${RELEASE_STEPS:-}" ] || set -- "$@" --steps "$RELEASE_STEPS"
[ -z "${RELEASE_STRATEGY:-}" ] || set -- "$@" --strategy "$RELEASE_STRATEGY"
for w in ${RELEASE_WEBHOOKS:-}; do
	set -- "$@" --webhook "$w"
done
if [ -n "${RELEASE_WEBHOOKS:-}" ] && [ -n "${RELEASE_WEBHOOK_TIMEOUT:-}" ]; then
	set -- "$@" --webhook-timeout "$RELEASE_WEBHOOK_TIMEOUT"
fi
switchyard "$@" >/dev/null || die "the rollout was not started"

# 4. Promoted: exit 0; aborted: exit 1 (traffic is on $LIVE again, which stays up).
if ! switchyard rollout wait --timeout "$ROLLOUT_TIMEOUT"; then
	die "the rollout of $SHA did not promote: $LIVE keeps the traffic and stays up"
fi
say "$IDLE ($SHA) has all the traffic"

# 5. and 6. The old colour may go once nothing flows to it on any replica.
switchyard wait-drained "$LIVE" --timeout "$DRAIN_TIMEOUT" ||
	die "$LIVE did not drain within $DRAIN_TIMEOUT: not scaled down"
if [ -n "${RELEASE_SCALE_DOWN:-}" ]; then
	say "scaling $LIVE down"
	OLD=$LIVE sh -c "$RELEASE_SCALE_DOWN" || die "RELEASE_SCALE_DOWN failed"
fi
say "released $SHA: $IDLE live, $LIVE drained"
