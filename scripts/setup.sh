#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages archfs needs to build, test and run; quiet when all are there.
set -euo pipefail
pkgs=(build-essential pkg-config meson ninja-build libfuse3-dev fuse3 libzip-dev zlib1g-dev
      libcjson-dev libisal-dev libsqlite3-dev sqlite3 libpq-dev
      libcurl4-openssl-dev libexpat1-dev  # remote archives: range requests, TLS, S3 SigV4; S3 listings (fs/archive/remote.c)
      liblzma-dev libzstd-dev zstd  # LZMA/XZ and zstd entries; zstd writes the test fixtures' ones
      python3 unzip zip attr util-linux bc
      scdoc bash-completion  # archfs.1 from docs/archfs.1.scd; the completion tests source bash_completion
      man-db systemd  # install_tests: man -l renders the pages, systemd-analyze verify checks the example units
      postgresql-15 postgresql-client-15 python3-psycopg2
      python3-flask python3-flask-sqlalchemy python3-flask-migrate gunicorn
      nginx  # the maintenance switch in front of the application (deploy_tests); remote_tests' HTTPS server
      openssl curl  # remote_tests: a self-signed certificate; requests to the test servers
      clang libclang-rt-14-dev)  # the libFuzzer targets (tests/fuzz)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# remote_tests' S3 server (s3rver) comes from npm: Debian's nodejs and npm,
# unless a node with its own npm is installed already.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The tests start their own throwaway cluster: the package must not
  # create or start the system one.
  mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] ||
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
  # Nor may nginx's start a server on port 80: the tests run their own.
  # policy-rc.d tells the packages' scripts not to start services.
  rcd=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    rcd=/usr/sbin/policy-rc.d
    trap 'rm -f "$rcd"' EXIT
    printf '#!/bin/sh\nexit 101\n' >"$rcd" && chmod 0755 "$rcd"
  fi
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null >/dev/null
fi
if [ ! -c /dev/fuse ]; then
  mknod -m 0666 /dev/fuse c 10 229 2>/dev/null || { echo "setup: /dev/fuse is missing and cannot be created" >&2; exit 1; }
fi
