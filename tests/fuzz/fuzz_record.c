/*
 * fuzz_record.c - libFuzzer target: the discovery message decoder
 * (pubsub/record.c, mlps_msg_decode) and its encoder.
 *
 * Input: one CPG message as a discovery handle receives it. Checked:
 *  - the decoder answers with a record or with one of its named errors;
 *  - a decoded record passes the same validation as one given to the API
 *    (doc/discovery.md: "validated with the same rules as the API");
 *  - decode -> encode -> decode gives the same message type and record
 *    (name, attributes in order, endpoints, ids, version), the encoding is
 *    never longer than the input (only skipped fields and header bytes are
 *    dropped) and encoding again gives the same bytes (one canonical form);
 *  - a copy (mlps_rec_dup) is the same record.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "msglayer.h"
#include "record.h"

static void check_same(const struct mlps_record *a, const struct mlps_record *b, int type)
{
	FZ_CHECK(mlps_rec_same_content(a, b), "content differs");
	FZ_CHECK(a->node_id == b->node_id && a->incarnation == b->incarnation, "ids differ");
	if (type != MLPS_MSG_BYE)
		FZ_CHECK(a->version == b->version, "version differs");
	if (type == MLPS_MSG_PUBLISH)
		FZ_CHECK(a->ml_node_id == b->ml_node_id, "ml_node_id differs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mlps_record *r = NULL, *again = NULL, *dup;
	int type = 0, type2 = 0;
	int rc = mlps_msg_decode(data, size, &type, &r);
	FZ_CHECK(rc <= 0 && rc >= MLPS_DE_NODE && rc != MLPS_DE_NOMEM, "decode returned %d", rc);
	FZ_CHECK(strcmp(mlps_decode_strerror(rc), "unknown decode error") != 0, "no text for %d", rc);
	if (rc)
		return 0;
	FZ_CHECK(type == MLPS_MSG_PUBLISH || type == MLPS_MSG_WITHDRAW || type == MLPS_MSG_BYE,
		 "type %d", type);
	FZ_CHECK(r->node_id != 0, "node id 0 decoded");
	if (type == MLPS_MSG_BYE) {
		FZ_CHECK(r->name[0] == 0 && r->n_attrs == 0 && r->n_endpoints == 0, "BYE with content");
	} else {
		struct mlps_rec_in in;
		mlps_rec_in_from_rec(&in, r);
		FZ_CHECK(mlps_rec_in_check(&in) == 0, "decoded record fails validation: %s",
			 mlps_last_error());
		if (type == MLPS_MSG_WITHDRAW)
			FZ_CHECK(r->n_attrs == 0 && r->n_endpoints == 0 && r->ml_node_id == 0,
				 "WITHDRAW with attributes, endpoints or ml_node_id");
	}

	uint8_t *enc, *enc2;
	size_t len, len2;
	FZ_CHECK(mlps_msg_encode(type, r, &enc, &len) == 0, "a decoded record does not encode");
	FZ_CHECK(len <= size, "encoding of %zu bytes from %zu", len, size);
	FZ_CHECK(mlps_msg_decode(enc, len, &type2, &again) == 0, "re-encoded message refused");
	FZ_CHECK(type2 == type, "type %d became %d", type, type2);
	check_same(r, again, type);
	FZ_CHECK(mlps_msg_encode(type, again, &enc2, &len2) == 0 && len2 == len &&
			 memcmp(enc, enc2, len) == 0,
		 "encoding is not canonical");

	dup = mlps_rec_dup(r);
	FZ_CHECK(dup != NULL, "dup");
	check_same(r, dup, type);
	FZ_CHECK(strcmp(r->name, dup->name) == 0, "dup name");

	free(enc);
	free(enc2);
	mlps_rec_free(dup);
	mlps_rec_free(again);
	mlps_rec_free(r);
	return 0;
}
