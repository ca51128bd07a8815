#!/usr/bin/env bash
# Build the local control-plane binaries from Go modules at pinned versions, into a cache outside
# the checkout. Binaries whose stamp matches (version, recipe, go.mod/go.sum, Go version) are kept,
# so a second run is a no-op.
#
#   e2e/controlplane/build.sh                 # the default set: kube-apiserver etcd kubectl
#   e2e/controlplane/build.sh kubectl         # any of: kube-apiserver kube-controller-manager
#                                             #   kube-scheduler kubectl etcd kwok helm kubeconform
#   e2e/controlplane/build.sh --all           # every one of them (the full stack and the tools)
#   e2e/controlplane/build.sh --print-dir     # print the directory the binaries land in
#
# Environment: RUNS_CONTROLLER_CACHE (default ~/.cache/runs-controller).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${RUNS_CONTROLLER_CACHE:-$HOME/.cache/runs-controller}"
bin_dir="$cache_root/bin/$K8S_VERSION"

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$bin_dir"
  exit 0
fi

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false

targets=("$@")
if [[ "${1:-}" == "--all" ]]; then
  targets=(kube-apiserver etcd kubectl kube-controller-manager kube-scheduler kwok helm kubeconform)
elif [[ ${#targets[@]} -eq 0 ]]; then
  targets=(kube-apiserver etcd kubectl)
fi

mkdir -p "$bin_dir"
# One builder at a time per cache: a second CI run on the same machine waits instead of racing.
exec 9>"$bin_dir/.build.lock"
flock 9

go_version="$(go env GOVERSION)"
k8s_minor="$(echo "$K8S_VERSION" | cut -d. -f2)"

module_for() {
  case "$1" in
    etcd | kwok | helm | kubeconform) echo "$1" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo k8s ;;
    *) echo "unknown control-plane binary: $1" >&2; return 1 ;;
  esac
}

stamp_for() {
  local name="$1" module="$2" version
  case "$module" in
    etcd) version="$ETCD_VERSION" ;;
    kwok) version="$KWOK_VERSION" ;;
    helm) version="$HELM_VERSION" ;;
    kubeconform) version="$KUBECONFORM_VERSION" ;;
    *) version="$K8S_VERSION" ;;
  esac
  local sums
  sums="$(cat "$here/$module/go.mod" "$here/$module/go.sum" | sha256sum | cut -c1-16)"
  echo "$name $version recipe=$RECIPE_REVISION $go_version mod=$sums"
}

ldflags_for() {
  local module="$1"
  local flags="-s -w"
  if [[ "$module" == k8s ]]; then
    # Stamp the real version: without it /version reports v0.0.0-master, which tools that
    # semver-parse it (helm, clients) reject.
    local pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
      flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
  elif [[ "$module" == helm ]]; then
    # Without these helm reports v3.22 and assumes Kubernetes 1.20 for `template` and `lint`.
    flags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    local pkg
    for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
      flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
    done
  elif [[ "$module" == kubeconform ]]; then
    flags+=" -X main.version=$KUBECONFORM_VERSION"
  fi
  echo "$flags"
}

package_for() {
  case "$1" in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
    helm) echo helm.sh/helm/v3/cmd/helm ;;
    kubeconform) echo github.com/yannh/kubeconform/cmd/kubeconform ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}

for name in "${targets[@]}"; do
  module="$(module_for "$name")"
  stamp="$(stamp_for "$name" "$module")"
  out="$bin_dir/$name"
  if [[ -x "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$stamp" ]]; then
    echo "control-plane: $name is cached ($out)"
    continue
  fi
  echo "control-plane: building $name ($stamp)"
  start=$SECONDS
  (
    cd "$here/$module"
    go build -trimpath -ldflags "$(ldflags_for "$module")" -o "$out.tmp" "$(package_for "$name")"
  )
  mv -f "$out.tmp" "$out"
  echo "$stamp" >"$out.stamp"
  echo "control-plane: built $name in $((SECONDS - start))s"
done
