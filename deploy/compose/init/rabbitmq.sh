#!/bin/sh
# SPDX-License-Identifier: MIT
# One RabbitMQ user per Agora service, through the management API
# (rabbitmqadmin of the rabbitmq:3.10-management image). RABBITMQ_HOST and
# RABBITMQ_ADMIN_PASSWORD name the broker and its admin (user 'admin');
# <SERVICE>_MQ_PASSWORD each service's password. Idempotent.
# Permissions, as scripts/engine-rabbitmq gives them: each user may
# configure, write and read only its own queues (its subscription, named
# after the service, and SUB.dead) and the exchanges agora.events,
# agora.dead and the default one (replay); on agora.events it may publish
# only its own event types (topic permissions, the bus's
# AGORA_BUS_PUBLISHERS).
set -eu
admin() {
    rabbitmqadmin --host="$RABBITMQ_HOST" --username=admin --password="$RABBITMQ_ADMIN_PASSWORD" "$@"
}
publishes() {
    case "$1" in
    catalog) echo '^product\..*$' ;;
    users) echo '^(user|session)\..*$' ;;
    orders) echo '^(order|cmd\.inventory|cmd\.payment|cmd\.shipment)\..*$' ;;
    inventory) echo '^(inventory|stock)\..*$' ;;
    payments) echo '^payment\..*$' ;;
    shipping) echo '^shipment\..*$' ;;
    *) echo '^$' ;;
    esac
}
for svc in $AGORA_SERVICES; do
    var=$(echo "$svc" | tr 'a-z-' 'A-Z_')_MQ_PASSWORD
    eval "pw=\${$var:?$var is not set}"
    admin declare user name="$svc" password="$pw" tags= >/dev/null
    re="^($svc|$svc\..+|agora\.events|agora\.dead|amq\.default)\$"
    admin declare permission vhost=/ user="$svc" configure="$re" write="$re" read="$re" >/dev/null
    admin declare topic_permission vhost=/ user="$svc" exchange=agora.events \
        write="$(publishes "$svc")" read='.*' >/dev/null
    echo "init-rabbitmq: user '$svc' ready"
done
