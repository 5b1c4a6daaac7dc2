/* SPDX-License-Identifier: MIT */
/* The programs of the shop and their default TCP ports: the one table that
 * every program's main.c (.default_port = AG_PORT_<NAME>), the supervisor
 * (cli/main.c: `agora up` starts the programs that have a binary, in table
 * order, each on its port plus --port-offset) and the JavaScript tests
 * (tests/lib/ports.mjs parses this file) read. Services not written yet
 * have their port reserved and no binary; writing one means giving its row
 * the binary (docs/new-service.md). */
#ifndef AG_PORTS_H
#define AG_PORTS_H

/* X(NAME, "name", default port, binary relative to the build directory, or
 * NULL while the program does not exist). Rows are in start-up order,
 * dependencies first: registry and bus, the services, the gateway last;
 * the consumers of product.* (inventory, orders) before the catalog, so
 * their subscriptions exist when the catalog seeds its products (a new
 * subscription sees only what is published after it); `agora up` stops
 * them in the reverse order. Keep one row per line: the
 * tests read them with a regular expression. */
#define AG_PROGRAMS(X)                                                                             \
    X(REGISTRY, "registry", 8500, "platform/registry/registry")                                    \
    X(BUS, "bus", 8400, "platform/bus/bus")                                                        \
    X(TRACES, "traces", 8089, "platform/traces/traces")                                            \
    X(USERS, "users", 8082, "services/users/users")                                                \
    X(INVENTORY, "inventory", 8083, "services/inventory/inventory")                                \
    X(ORDERS, "orders", 8084, "services/orders/orders")                                            \
    X(CATALOG, "catalog", 8081, "services/catalog/catalog")                                        \
    X(PAYMENTS, "payments", 8085, "services/payments/payments")                                    \
    X(SHIPPING, "shipping", 8086, "services/shipping/shipping")                                    \
    X(NOTIFICATIONS, "notifications", 8087, "services/notifications/notifications")                \
    X(ANALYTICS, "analytics", 8088, "services/analytics/analytics")                                \
    X(GATEWAY, "gateway", 8080, "platform/gateway/gateway")

/* AG_PORT_CATALOG and the like: each program's default port. */
enum ag_port {
#define AG__PORT_ENUM(NAME, name, port, binary) AG_PORT_##NAME = (port),
    AG_PROGRAMS(AG__PORT_ENUM)
#undef AG__PORT_ENUM
};

/* Not a program: the gateway's operator listener (AGORA_OPS_ADDRESS, for
 * /metrics and /health/services, loopback only). */
#define AG_PORT_GATEWAY_OPS 8090

/* Not programs: under `agora up --backends postgres,rabbitmq`, the private
 * PostgreSQL cluster and RabbitMQ node (AMQP port) the supervisor starts. */
#define AG_PORT_POSTGRES 8432
#define AG_PORT_RABBITMQ 8672

/* Under `agora up --scale orders=3`, instance k (2..AG_MAX_INSTANCES) of a
 * program listens on its port + (k - 1) * AG_PORT_INSTANCE_STRIDE. */
#define AG_PORT_INSTANCE_STRIDE 1000
#define AG_MAX_INSTANCES        9

#endif /* AG_PORTS_H */
