/*-------------------------------------------------------------------------
 *
 * exchange.c
 *	  One chunk of items through the whole pipeline: rate limiter, token,
 *	  vendor request, HTTP, vendor answer, request log.
 *
 * This is the synchronous path used by the SQL functions.  Following the
 * contract, it does not retry a 5xx or a timeout (the queue is the tool for
 * that), but it does refresh a refused token once and, when the vendor says
 * it is going too fast, waits for the limiter and tries once more.  The
 * worker drives the same steps asynchronously with the same classifiers.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "utils/builtins.h"

/*
 * ccp_outcome_transient fills out for a chunk that failed without an
 * answer the vendor's reader could judge: not ok, no code, transient (the
 * queue tries again), with http_status (0: none) and message, which the
 * caller has made safe to show.
 */
void
ccp_outcome_transient(CcpOutcome *out, int http_status, char *message)
{
	memset(out, 0, sizeof(*out));
	out->ok = false;
	out->http_status = http_status;
	out->success_count = -1;
	out->message = message;
	out->retry = CCP_RETRY_TRANSIENT;
}

/*
 * ccp_classify_answer fills out from an HTTP result for chunk, whether it
 * is a transport failure or an answer for the vendor to read.  The token
 * the request carried, like the mapping's secrets, is redacted from
 * whatever the vendor sent back.
 */
void
ccp_classify_answer(const CcpServer *srv, const CcpOpDef *def,
					const CcpChunk *chunk, const CcpHttpResult *res,
					CcpOutcome *out)
{
	memset(out, 0, sizeof(*out));
	out->success_count = -1;
	if (res->transport_error)
		ccp_outcome_transient(out, Max(res->status, 0),
							  psprintf("%s: %s",
									   res->timed_out ? "request timed out" : "request failed",
									   res->error ? res->error : "unknown transport error"));
	else
	{
		out->http_status = res->status;
		def->parse(srv, chunk, res, out);
		if (out->message == NULL)
			out->message = pstrdup(out->ok ? "ok" : "failed");
		/* a vendor that says ok over a non-2xx status is not believed */
		if (out->ok && (res->status < 200 || res->status > 299))
			out->ok = false;
	}
	if (!out->ok && out->item_ok != NULL)
	{
		/* a failed request erased nothing, whatever it said per item */
		out->item_ok = NULL;
		out->item_message = NULL;
	}
	ccp_outcome_clean(srv, out, chunk->token);
	if (out->item_message != NULL)
	{
		for (int i = 0; i < chunk->nitems; i++)
		{
			if (out->item_message[i] != NULL)
				out->item_message[i] =
					ccp_clip(ccp_redact(srv, out->item_message[i], chunk->token),
							 CCP_MAX_MESSAGE_BYTES);
		}
	}
}

/*
 * ccp_outcome_no_token fills out for a chunk that was not sent because no
 * token could be had: not ok, transient, with the token request's HTTP
 * status (0 if it got none) and error, which is already redacted.
 */
void
ccp_outcome_no_token(CcpOutcome *out, const char *error, int http_status)
{
	ccp_outcome_transient(out, http_status,
						  psprintf("could not get a token: %s", error));
}

/*
 * ccp_exchange_once takes a rate-limit ticket, a token and sends one
 * request, giving the ticket back on every path.  Returns false with
 * *error and *status set when no token could be had (nothing was sent
 * then).  chunk->token is set to the token used.
 */
static bool
ccp_exchange_once(const CcpServer *srv, const CcpOpDef *def,
				  CcpChunk *chunk, const char *stale, CcpOrigin origin,
				  char **error, int *status, CcpHttpResult *res)
{
	int			ticket = ccp_rate_acquire(srv, true);
	volatile bool have_token = false;

	PG_TRY();
	{
		char	   *token;

		have_token = ccp_token_get(srv, stale, &token, error, status, origin);
		chunk->token = token;
		if (have_token)
		{
			CcpHttpRequest req;

			memset(&req, 0, sizeof(req));
			def->build(srv, chunk, &req);
			ccp_http_perform(&srv->http, &req, res);
		}
	}
	PG_FINALLY();
	{
		ccp_rate_release(srv, ticket);
	}
	PG_END_TRY();
	return have_token;
}

/*
 * ccp_exchange sends one chunk (items already validated, distinct and
 * within the vendor's limit) and fills out with the final outcome.  Waits
 * for the rate limiter; errors escape only for cancels and internal
 * failures.  Every HTTP request made is added to the request log.  Every
 * attempt carries the same batch key, made here.
 */
void
ccp_exchange(const CcpServer *srv, const CcpOpDef *def,
			 const CcpParams *params, char **items, int nitems,
			 CcpOrigin origin, int64 request_id, CcpOutcome *out)
{
	bool		token_retried = false;
	bool		rate_retried = false;
	char	   *stale = NULL;
	CcpChunk	chunk;

	chunk.params = params;
	chunk.items = items;
	chunk.nitems = nitems;
	chunk.token = NULL;
	chunk.batch_key = ccp_random_key();

	for (;;)
	{
		CcpHttpResult res;
		char	   *error = NULL;
		int			status = 0;

		if (!ccp_exchange_once(srv, def, &chunk, stale, origin,
							   &error, &status, &res))
		{
			/* nothing went out for the items; the token request is logged */
			ccp_outcome_no_token(out, error, status);
			return;
		}

		ccp_classify_answer(srv, def, &chunk, &res, out);
		ccp_reqlog_write(srv, def->name, items, nitems, out, res.elapsed_ms,
						 origin, request_id);

		if (out->retry == CCP_RETRY_TOKEN && !token_retried &&
			srv->vendor->build_token_request != NULL)
		{
			token_retried = true;
			stale = (char *) chunk.token;
			continue;
		}
		if (out->retry == CCP_RETRY_RATE && !rate_retried)
		{
			rate_retried = true;
			ccp_rate_penalize(srv);
			continue;
		}
		return;
	}
}

/*
 * ccp_random_key returns 32 lower-hex characters from a strong random
 * source, palloc'd: the batch key of a synchronous chunk, which is never
 * sent again by another call, or of a queued batch's attempt generation
 * (worker.c), which its automatic attempts share.
 */
char *
ccp_random_key(void)
{
	uint8		raw[16];
	char	   *hex = palloc(sizeof(raw) * 2 + 1);

	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random batch key")));
	hex_encode((const char *) raw, sizeof(raw), hex);
	hex[sizeof(raw) * 2] = '\0';
	return hex;
}
