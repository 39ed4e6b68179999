#!/usr/bin/env bash
# Makes a throwaway CA and server certificates signed by it, in DIR (default: ./test-certs).
# TEST-ONLY: the keys are generated fresh for each test run and never committed; nothing but
# loopback tests should trust this CA.
#   make_test_certs.sh DIR   ->  DIR/ca.pem
#                                DIR/server.pem  DIR/server.key   for 127.0.0.1 and localhost
#                                DIR/expired.pem DIR/expired.key  the same names, expired in 2020
#                                DIR/wronghost.pem DIR/wronghost.key  for other.invalid only
set -euo pipefail
dir=${1:-test-certs}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=nanobatch test CA (throwaway)" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
mkdir -p ca-db && : > ca-db/index.txt && echo 01 > ca-db/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = test
[test]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
[loopback]
subjectAltName = DNS:localhost,IP:127.0.0.1
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
[other]
subjectAltName = DNS:other.invalid
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
CNF
# issue NAME EXTENSIONS [openssl ca date options...]
issue() {
  local name=$1 extensions=$2
  shift 2
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$name" -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key -in "$name.csr" \
    -out "$name.pem" -extensions "$extensions" "$@" 2>/dev/null
  rm -f "$name.csr"
}
issue server loopback -days 2
issue expired loopback -startdate 20200101000000Z -enddate 20200102000000Z
issue wronghost other -days 2
rm -rf ca-db ca.cnf ca.key
