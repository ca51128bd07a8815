#!/usr/bin/env bash
# Lint the chart and validate what it renders, offline:
#   helm lint --strict (default values, and ci/all-options-values.yaml that turns every option on);
#   helm template | kubeconform -strict against JSON schemas generated from the pinned
#   kube-apiserver's own OpenAPI (runs_controller.testing.kubeconform_schemas, cached per
#   Kubernetes version), plus charts/schemas/ for the ServiceMonitor (no core schema exists);
#   the chart's generated files are current (runs-controller rbac --check, CRDs == manifests/crds).
# Needs helm and kubeconform: bash e2e/controlplane/build.sh helm kubeconform.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin_dir="$(bash e2e/controlplane/build.sh --print-dir)"
helm="$bin_dir/helm"
kubeconform="$bin_dir/kubeconform"
chart=charts/runs-controller
all_on="$chart/ci/all-options-values.yaml"
# shellcheck source=/dev/null
source e2e/controlplane/versions.env
schemas="${RUNS_CONTROLLER_CACHE:-$HOME/.cache/runs-controller}/kubeconform-schemas/$K8S_VERSION"

if [[ ! -f "$schemas/deployment-apps-v1.json" ]]; then
  echo "+ generating kubeconform schemas from kube-apiserver $K8S_VERSION into $schemas"
  mkdir -p "${schemas%/*}"
  tmp="$(mktemp -d "$schemas.tmp.XXXXXX")"
  uv run --frozen python -m runs_controller.testing.kubeconform_schemas "$tmp"
  rm -rf "$schemas" && mv "$tmp" "$schemas"
fi

echo "+ generated files are current"
uv run --frozen runs-controller rbac --check --output "$chart/files/rbac.yaml"
uv run --frozen runs-controller manifests --check --output "$chart/crds"

for values in "" "$all_on"; do
  args=(--namespace runs-system)
  [[ -n "$values" ]] && args+=(--values "$values")
  echo "+ helm lint --strict $chart ${values:+--values $values}"
  "$helm" lint --strict "$chart" "${args[@]}"
  echo "+ helm template $chart ${values:+--values $values} | kubeconform -strict"
  "$helm" template runs-controller "$chart" --include-crds "${args[@]}" \
    | "$kubeconform" -strict -summary \
        -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        -schema-location "charts/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" -
done
echo "chart ok"
