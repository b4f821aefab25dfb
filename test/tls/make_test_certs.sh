#!/usr/bin/env bash
# Makes throwaway TLS material for Atoll's tests and examples in DIR (never
# for production use; nothing here is checked in):
#   ca.pem / ca.key                  a test CA
#   server.pem / server.key          RSA 2048, CN=localhost (SAN localhost, 127.0.0.1, ::1)
#   server-chain.pem                 server.pem followed by ca.pem
#   server-ecdsa.pem / .key          ECDSA P-256, same names
#   other.pem / other.key            RSA, CN=other.test (for SNI tests)
#   client.pem / client.key          a client certificate signed by the CA
#   untrusted-client.pem / .key      a self-signed client certificate
# Usage: make_test_certs.sh DIR   (needs the openssl command line tool)
set -euo pipefail
dir=${1:?usage: make_test_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
days=3650
ossl() { openssl "$@" 2>/dev/null; }

ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days "$days" \
  -subj "/CN=Atoll Test CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign"

# sign NAME KEYSPEC SUBJECT SAN EXTKEYUSAGE
sign() {
  local name=$1 keyspec=$2 subject=$3 san=$4 eku=$5
  if [[ $keyspec == ec ]]; then
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key"
  else
    ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$name.key"
  fi
  ossl req -new -key "$name.key" -out "$name.csr" -subj "$subject"
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$san" "$eku" > "$name.ext"
  ossl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$name.pem" \
    -days "$days" -extfile "$name.ext"
  rm -f "$name.csr" "$name.ext"
}

sign server rsa "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
sign server-ecdsa ec "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
sign other rsa "/CN=other.test" "DNS:other.test" serverAuth
sign client rsa "/CN=atoll-test-client" "DNS:client.test" clientAuth
cat server.pem ca.pem > server-chain.pem
ossl req -x509 -newkey rsa:2048 -nodes -keyout untrusted-client.key -out untrusted-client.pem \
  -days "$days" -subj "/CN=untrusted client"
rm -f ca.srl
echo "test certificates in $(pwd)"
