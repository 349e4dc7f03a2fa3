#!/bin/sh
# nginx container entry: start nginx in the foreground as PID 1, and reload it whenever the
# certbot sidecar has put a new certificate in /certs/current/ (checked every 5 minutes).
set -eu
cert=/certs/current/fullchain.pem
watch_certificate() {
    last=$(cksum < "$cert")
    while sleep 300; do
        now=$(cksum < "$cert" 2>/dev/null || echo missing)
        if [ "$now" != "$last" ] && [ "$now" != missing ]; then
            echo "certificate changed; reloading nginx" >&2
            nginx -c /etc/nginx/nacritan/nginx.conf -s reload && last=$now
        fi
    done
}
watch_certificate &
exec nginx -c /etc/nginx/nacritan/nginx.conf -g 'daemon off;'
