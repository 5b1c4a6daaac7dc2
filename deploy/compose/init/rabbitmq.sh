#!/bin/sh
# SPDX-License-Identifier: MIT
# One RabbitMQ user per Agora service, through the management API
# (rabbitmqadmin of the rabbitmq:3.10-management image). RABBITMQ_HOST and
# RABBITMQ_ADMIN_PASSWORD name the broker and its admin (user 'admin');
# <SERVICE>_MQ_PASSWORD each service's password. Idempotent.
# Permissions: each user may configure, write and read only names that
# start with "agora." or are server-named (amq.gen-*), in vhost "/". That
# keeps services off the broker's other tenants, not off each other's
# queues: narrowing to "a service publishes only its own event types"
# (DESIGN.md section 4) needs the RabbitMQ backend's naming (deploy/README.md).
set -eu
admin() {
    rabbitmqadmin --host="$RABBITMQ_HOST" --username=admin --password="$RABBITMQ_ADMIN_PASSWORD" "$@"
}
for svc in $AGORA_SERVICES; do
    var=$(echo "$svc" | tr 'a-z-' 'A-Z_')_MQ_PASSWORD
    eval "pw=\${$var:?$var is not set}"
    admin declare user name="$svc" password="$pw" tags= >/dev/null
    admin declare permission vhost=/ user="$svc" \
        configure='^(agora\..*|amq\.gen.*)$' write='^(agora\..*|amq\.gen.*)$' \
        read='^(agora\..*|amq\.gen.*)$' >/dev/null
    echo "init-rabbitmq: user '$svc' ready"
done
