/* SPDX-License-Identifier: MIT */
/* librabbitmq (rabbitmq-c), loaded at run time (agora/dynlib.h) rather than
 * linked, so that only a program given an amqp:// URL maps it and the
 * OpenSSL behind it: the events runtime's RabbitMQ backend and `agora
 * dead-letters`. Include this header instead of <amqp.h>: every amqp_*
 * function (and amqp_empty_table) used through it is a pointer of one
 * table, filled by ag_rabbitmq_load(), which must have returned 0 before
 * the first call. A librabbitmq function used without being listed here
 * fails to link, as the programs no longer link librabbitmq. Include no
 * other rabbitmq-c header after this one: its prototypes would meet the
 * macros below. */
#ifndef AG_RABBITMQ_H
#define AG_RABBITMQ_H

#include "agora/base.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>

/* Every symbol of librabbitmq the chassis and the agora command use. */
#define AG_RABBITMQ_SYMS(X)                                                                        \
    X(amqp_basic_ack)                                                                              \
    X(amqp_basic_consume)                                                                          \
    X(amqp_basic_get)                                                                              \
    X(amqp_basic_nack)                                                                             \
    X(amqp_basic_publish)                                                                          \
    X(amqp_basic_qos)                                                                              \
    X(amqp_channel_close)                                                                          \
    X(amqp_channel_open)                                                                           \
    X(amqp_confirm_select)                                                                         \
    X(amqp_connection_close)                                                                       \
    X(amqp_cstring_bytes)                                                                          \
    X(amqp_data_in_buffer)                                                                         \
    X(amqp_default_connection_info)                                                                \
    X(amqp_destroy_connection)                                                                     \
    X(amqp_destroy_message)                                                                        \
    X(amqp_empty_table)                                                                            \
    X(amqp_error_string2)                                                                          \
    X(amqp_exchange_declare)                                                                       \
    X(amqp_frames_enqueued)                                                                        \
    X(amqp_get_rpc_reply)                                                                          \
    X(amqp_get_sockfd)                                                                             \
    X(amqp_login)                                                                                  \
    X(amqp_maybe_release_buffers)                                                                  \
    X(amqp_new_connection)                                                                         \
    X(amqp_parse_url)                                                                              \
    X(amqp_queue_bind)                                                                             \
    X(amqp_queue_declare)                                                                          \
    X(amqp_queue_purge)                                                                            \
    X(amqp_read_message)                                                                           \
    X(amqp_send_method)                                                                            \
    X(amqp_set_rpc_timeout)                                                                        \
    X(amqp_simple_wait_frame_noblock)                                                              \
    X(amqp_socket_open_noblock)                                                                    \
    X(amqp_tcp_socket_new)

/* One pointer per symbol, typed by <amqp.h>'s declarations. */
#define AG__RABBITMQ_FIELD(f) __typeof__(f) *p_##f;
struct ag_rabbitmq_api {
    AG_RABBITMQ_SYMS(AG__RABBITMQ_FIELD)
};
#undef AG__RABBITMQ_FIELD

/* The table: all NULL until ag_rabbitmq_load() returned 0. */
extern struct ag_rabbitmq_api ag_rabbitmq;

/* Load "librabbitmq.so.4" and fill 'ag_rabbitmq', once per process. Any
 * thread. Returns 0, or AG_ECONFIG with "cannot load 'librabbitmq.so.4'
 * (install the package librabbitmq4): <why>" in 'errbuf' (when not NULL). */
int ag_rabbitmq_load(char *errbuf, size_t errbuf_len);

/* Calls read as plain librabbitmq. */
#define amqp_basic_ack                 (*ag_rabbitmq.p_amqp_basic_ack)
#define amqp_basic_consume             (*ag_rabbitmq.p_amqp_basic_consume)
#define amqp_basic_get                 (*ag_rabbitmq.p_amqp_basic_get)
#define amqp_basic_nack                (*ag_rabbitmq.p_amqp_basic_nack)
#define amqp_basic_publish             (*ag_rabbitmq.p_amqp_basic_publish)
#define amqp_basic_qos                 (*ag_rabbitmq.p_amqp_basic_qos)
#define amqp_channel_close             (*ag_rabbitmq.p_amqp_channel_close)
#define amqp_channel_open              (*ag_rabbitmq.p_amqp_channel_open)
#define amqp_confirm_select            (*ag_rabbitmq.p_amqp_confirm_select)
#define amqp_connection_close          (*ag_rabbitmq.p_amqp_connection_close)
#define amqp_cstring_bytes             (*ag_rabbitmq.p_amqp_cstring_bytes)
#define amqp_data_in_buffer            (*ag_rabbitmq.p_amqp_data_in_buffer)
#define amqp_default_connection_info   (*ag_rabbitmq.p_amqp_default_connection_info)
#define amqp_destroy_connection        (*ag_rabbitmq.p_amqp_destroy_connection)
#define amqp_destroy_message           (*ag_rabbitmq.p_amqp_destroy_message)
#define amqp_empty_table               (*ag_rabbitmq.p_amqp_empty_table)
#define amqp_error_string2             (*ag_rabbitmq.p_amqp_error_string2)
#define amqp_exchange_declare          (*ag_rabbitmq.p_amqp_exchange_declare)
#define amqp_frames_enqueued           (*ag_rabbitmq.p_amqp_frames_enqueued)
#define amqp_get_rpc_reply             (*ag_rabbitmq.p_amqp_get_rpc_reply)
#define amqp_get_sockfd                (*ag_rabbitmq.p_amqp_get_sockfd)
#define amqp_login                     (*ag_rabbitmq.p_amqp_login)
#define amqp_maybe_release_buffers     (*ag_rabbitmq.p_amqp_maybe_release_buffers)
#define amqp_new_connection            (*ag_rabbitmq.p_amqp_new_connection)
#define amqp_parse_url                 (*ag_rabbitmq.p_amqp_parse_url)
#define amqp_queue_bind                (*ag_rabbitmq.p_amqp_queue_bind)
#define amqp_queue_declare             (*ag_rabbitmq.p_amqp_queue_declare)
#define amqp_queue_purge               (*ag_rabbitmq.p_amqp_queue_purge)
#define amqp_read_message              (*ag_rabbitmq.p_amqp_read_message)
#define amqp_send_method               (*ag_rabbitmq.p_amqp_send_method)
#define amqp_set_rpc_timeout           (*ag_rabbitmq.p_amqp_set_rpc_timeout)
#define amqp_simple_wait_frame_noblock (*ag_rabbitmq.p_amqp_simple_wait_frame_noblock)
#define amqp_socket_open_noblock       (*ag_rabbitmq.p_amqp_socket_open_noblock)
#define amqp_tcp_socket_new            (*ag_rabbitmq.p_amqp_tcp_socket_new)

#endif /* AG_RABBITMQ_H */
