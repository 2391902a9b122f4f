/* hello.c - publish a service, discover it, ask it something: msglayer and its
 * discovery in one process, on one libev loop. Needs Corosync running here:
 * tests/corosync/cs.sh up1; tests/corosync/cs.sh exec 0 build/bin/ml-hello */
#include <ev.h>
#include <mlpubsub.h>
#include <msglayer.h>
#include <stdio.h>

static void serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	printf("server: node %u asks \"%.*s\"\n", ml_peer_node_id(from), (int)msg->len,
	       (const char *)msg->data);
	struct ml_buf b = ml_buf_plain("hello, world", 12);
	ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
}

static void answered(void *loop, int status, const struct ml_msg *resp)
{
	if (status == ML_OK)
		printf("client: answer \"%.*s\"\n", (int)resp->len, (const char *)resp->data);
	else
		printf("client: failed: %s\n", ml_strerror(status));
	ev_break(loop, EVBREAK_ALL);
}

/* The record comes with a session to its publisher (connect_publishers). */
static void found(void *loop, mlps_sub *sub, int event, int reason,
		  const struct mlps_record *rec, const struct mlps_record *old)
{
	(void)sub, (void)reason, (void)old;
	if (event != MLPS_ADDED || !rec->peer)
		return;
	printf("client: found %s at %s\n", rec->name, rec->endpoints[0]);
	struct ml_buf b = ml_buf_plain("hi", 2);
	ml_request_send(rec->peer, 1, &b, 1, ML_SEND_COPY, answered, loop);
}

int main(void)
{
	struct ml_config cfg;
	struct mlps_config pc;
	ml_ctx *server, *client;
	mlps *pub, *subscriber;
	mlps_sub *sub;
	char url[64];

	struct ev_loop *loop = ev_default_loop(0);
	ml_config_init(&cfg);           /* node 1 serves, on a port the kernel picks */
	cfg.node_id = 1;
	cfg.loop = loop;                /* embedded: everything runs in ev_run below */
	cfg.on_request = serve;
	if (ml_ctx_create(&cfg, &server) || ml_listen(server, "tcp://127.0.0.1:0"))
		return 1;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ml_listen_port(server, 0));
	cfg.node_id = 2;                /* node 2 asks */
	cfg.on_request = NULL;
	if (ml_ctx_create(&cfg, &client))
		return 1;
	mlps_config_init(&pc);          /* publish "hello/world" with node 1's endpoint */
	pc.msg_ctx = server;
	const char *eps[] = { url };
	if (mlps_create(loop, &pc, &pub) || mlps_publish(pub, "hello/world", NULL, 0, eps, 1)) {
		fprintf(stderr, "discovery: %s (is Corosync running here?)\n", mlps_last_error());
		return 1;
	}
	pc.msg_ctx = client;            /* subscribe as node 2, with sessions */
	pc.connect_publishers = 1;
	if (mlps_create(loop, &pc, &subscriber) ||
	    mlps_subscribe(subscriber, "hello/", NULL, found, loop, &sub))
		return 1;
	ev_run(loop, 0);                /* until the answer comes */
	mlps_destroy(subscriber);
	mlps_destroy(pub);
	ml_ctx_destroy(client);
	ml_ctx_destroy(server);
	return 0;
}
