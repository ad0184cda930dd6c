#!/usr/bin/env bash
# Installs the tools Tributary's tests and demo need, each at a pinned version:
#   - a Terraform CLI: `terraform` on PATH when present, else OpenTofu built from
#     the Go module proxy into .cache/tools/bin/tofu;
#   - Debian packages the tests use (real Kafka clients, the AWS CLI, Packer,
#     ShellCheck, systemd-analyze, and the loop device, mount and mkfs tools of
#     the block-device tests, ip for the chaos test's network namespaces), with
#     apt-get when missing and when running as root;
#   - Go tools (staticcheck) into .cache/tools/bin.
# It writes .cache/tools/env.mk, which the GNUmakefile includes, so later make
# runs know which Terraform CLI to hand terraform-plugin-testing.
# Safe to run again: it only installs what is missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache="$root/.cache/tools"
bin="$cache/bin"
mkdir -p "$bin"

# Pinned versions. Debian packages are pinned to bookworm's builds.
# OpenTofu 1.11 is the first with write-only attributes (tributary_scram_user.password_wo).
OPENTOFU_VERSION=v1.11.0
STATICCHECK_VERSION=v0.8.2
DEBIAN_PACKAGES=(
	"kcat=1.7.1-2"
	"python3-kafka=2.0.2-3"
	"python3-confluent-kafka=1.7.0-4"
	# kafka-python reads snappy, lz4 and zstd batches only with these
	# (franz-go, the demo's producer, compresses with snappy by default).
	"python3-snappy=0.5.3-1.2+b1"
	"python3-lz4=4.0.2+dfsg-1+b2"
	"python3-zstandard=0.20.0-3"
	"awscli=2.9.19-1"
	"packer=1.6.6+ds2-1+b1"
	"shellcheck=0.9.0-1"
	"xfsprogs=6.1.0-1"
	"systemd=252.38-1~deb12u1"
	"e2fsprogs=1.47.0-2"
	"util-linux=2.38.1-5+deb12u3"
	"mount=2.38.1-5+deb12u3"
	"iproute2=6.1.0-3"
)

log() { printf 'tools: %s\n' "$*" >&2; }

install_debian_packages() {
	local missing=() spec name want have
	for spec in "${DEBIAN_PACKAGES[@]}"; do
		name=${spec%%=*}
		want=${spec#*=}
		have=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
		if [[ "$have" != "install ok installed $want" ]]; then
			missing+=("$spec")
		fi
	done
	if ((${#missing[@]} == 0)); then
		return
	fi
	if [[ $(id -u) -ne 0 ]]; then
		log "missing Debian packages: ${missing[*]}"
		log "run as root, or: sudo apt-get install -y ${missing[*]}"
		exit 1
	fi
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$cache/apt.log" 2>&1; then
		apt-get update >>"$cache/apt.log" 2>&1
		apt-get install -y --no-install-recommends "${missing[@]}" >>"$cache/apt.log" 2>&1 || {
			log "apt-get failed; see $cache/apt.log"
			tail -20 "$cache/apt.log" >&2
			exit 1
		}
	fi
}

# install_terraform_cli records the Terraform CLI to test with in env.mk,
# building OpenTofu when no terraform is on PATH.
install_terraform_cli() {
	local tf
	if tf=$(command -v terraform); then
		printf 'TF_ACC_TERRAFORM_PATH := %s\n' "$tf" >"$cache/env.mk"
		log "using $("$tf" version 2>/dev/null | grep -m1 -E '^(Terraform|OpenTofu) v') at $tf"
		return
	fi
	if [[ ! -x "$bin/tofu" ]] || ! "$bin/tofu" version | grep -q "OpenTofu ${OPENTOFU_VERSION}"; then
		log "no terraform on PATH: building OpenTofu ${OPENTOFU_VERSION} from the Go module proxy"
		local dir src
		dir=$(cd "$cache" && GOFLAGS=-mod=mod go mod download -json "github.com/opentofu/opentofu@${OPENTOFU_VERSION}" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		src="$cache/opentofu-src"
		rm -rf "$src"
		cp -r "$dir" "$src"
		chmod -R u+w "$src"
		(cd "$src" && go build -ldflags "-X github.com/opentofu/opentofu/version.dev=no" -o "$bin/tofu" ./cmd/tofu)
		rm -rf "$src"
	fi
	{
		printf 'TF_ACC_TERRAFORM_PATH := %s\n' "$bin/tofu"
		printf 'TF_ACC_PROVIDER_NAMESPACE := hashicorp\n'
	} >"$cache/env.mk"
	log "using $("$bin/tofu" version | head -1) at $bin/tofu"
}

install_go_tools() {
	if [[ ! -x "$bin/staticcheck" ]] || ! "$bin/staticcheck" -version | grep -q "${STATICCHECK_VERSION#v}"; then
		log "installing staticcheck ${STATICCHECK_VERSION}"
		GOBIN="$bin" go install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
	fi
}

install_debian_packages
install_terraform_cli
install_go_tools
log "ready"
