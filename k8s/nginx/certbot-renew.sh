#!/bin/sh
# certbot sidecar: obtain the certificate for NACRITAN_DOMAIN (comma-separated names) by
# HTTP-01 through nginx's /.well-known/acme-challenge/ webroot, then try to renew it twice
# a day; each time, publish the live files to /certs/current/ where nginx reads them.
set -eu
: "${NACRITAN_DOMAIN:?set NACRITAN_DOMAIN in the overlay}"
: "${NACRITAN_ACME_EMAIL:?set NACRITAN_ACME_EMAIL in the overlay}"
staging=""
if [ "${NACRITAN_ACME_STAGING:-0}" = "1" ]; then
    staging="--test-cert"
fi
live=/certs/letsencrypt/live/nacritan
while :; do
    # shellcheck disable=SC2086 # $staging is empty or one flag
    certbot certonly $staging --non-interactive --agree-tos --keep-until-expiring \
        --email "$NACRITAN_ACME_EMAIL" --cert-name nacritan -d "$NACRITAN_DOMAIN" \
        --webroot -w /var/www/acme \
        --config-dir /certs/letsencrypt --work-dir /tmp/certbot/work --logs-dir /tmp/certbot/logs \
        || echo "certbot failed; nginx keeps the current certificate, retrying later" >&2
    if [ -f "$live/fullchain.pem" ] && ! cmp -s "$live/fullchain.pem" /certs/current/fullchain.pem; then
        # Copy then rename, so nginx never reads a half-written pair.
        cp -L "$live/privkey.pem" /certs/current/.privkey.pem.new
        cp -L "$live/fullchain.pem" /certs/current/.fullchain.pem.new
        mv /certs/current/.privkey.pem.new /certs/current/privkey.pem
        mv /certs/current/.fullchain.pem.new /certs/current/fullchain.pem
        echo "published a new certificate to /certs/current" >&2
    fi
    sleep 43200
done
