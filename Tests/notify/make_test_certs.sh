#!/bin/sh
# Makes the certificates of the transport tests in DIR with the openssl CLI:
# ca.pem (the test CA), server.pem/server.key (localhost, 127.0.0.1 and ::1, signed
# by it), wrong.pem/wrong.key (only wrong.example, signed by it), and other-ca.pem
# (a CA that signed nothing here). P-256 keys, valid for two days.
set -eu
dir=$1
cd "$dir"
subj_ca="/CN=Parley Test CA"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout ca.key -out ca.pem -subj "$subj_ca" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout other-ca.key -out other-ca.pem -subj "/CN=Parley Other CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
leaf() {
    name=$1 cn=$2 san=$3
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' "$san" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out "$name.pem" -extfile "$name.ext" 2>/dev/null
}
leaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf wrong wrong.example "DNS:wrong.example"
