/*-------------------------------------------------------------------------
 *
 * exchange.c
 *	  The one exchange: a chunk of items through rate limiter, token,
 *	  vendor request, HTTP, vendor answer, request log and the decision
 *	  what comes next.
 *
 * The exchange is a step machine (CcpExchange) that both paths drive:
 *   prepare  ticket, token and the vendor's request (ccp_exchange_prepare);
 *   send     the driver's business: ccp_exchange() performs it blocking
 *            for the synchronous SQL functions, the worker starts it with
 *            curl multi among many;
 *   answer   classify, log, and decide (ccp_exchange_answer): final,
 *            refresh the token and send again, or penalise and wait;
 *   settle   for queued items, what the final outcome makes of them: done,
 *            queued again after a backoff, or failed (ccp_exchange_settle).
 * Following the contract, a synchronous call does not retry a 5xx or a
 * timeout (the queue is the tool for that), but both paths refresh a
 * refused token once, and when the vendor says it is going too fast a
 * synchronous call waits for the limiter and tries once more while the
 * worker leaves it to the queue's backoff.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

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
 * ccp_exchange_init readies x for one chunk of items (validated, distinct,
 * within the vendor's limit; none for a request the params alone define).
 * batch_key is the same for every attempt of the chunk (NULL: a random one
 * is made).  A blocking exchange, the synchronous calls', waits for the
 * rate limiter; the worker's never does.  No ticket is held yet (the
 * caller may hand one in through x->ticket).
 */
void
ccp_exchange_init(CcpExchange *x, const CcpServer *srv, const CcpOpDef *def,
				  const void *params, char **items, int nitems,
				  const char *batch_key, CcpOrigin origin, int64 request_id,
				  bool blocking)
{
	memset(x, 0, sizeof(*x));
	x->srv = srv;
	x->def = def;
	x->chunk.params = params;
	x->chunk.items = items;
	x->chunk.nitems = nitems;
	x->chunk.token = NULL;
	x->chunk.batch_key = batch_key ? batch_key : ccp_random_key();
	x->origin = origin;
	x->request_id = request_id;
	x->scope = ccp_params_scope(def, params);
	x->blocking = blocking;
	x->ticket = -1;
	x->out.success_count = -1;
}

/*
 * ccp_exchange_abandon gives back the rate-limit ticket x holds, if any:
 * for a driver whose request will not be answered (an error, an abort).
 */
void
ccp_exchange_abandon(CcpExchange *x)
{
	if (x->ticket != -1)
	{
		ccp_rate_release(x->srv, x->ticket);
		x->ticket = -1;
	}
}

/*
 * ccp_exchange_build builds x's request into x->req with the vendor's
 * builder, carrying token (NULL for vendors without tokens).  It takes no
 * ticket and no token, and sends and logs nothing: ccp_exchange_prepare's
 * last step, and all that ccpurge_explain does.
 */
void
ccp_exchange_build(CcpExchange *x, const char *token)
{
	x->chunk.token = token;
	memset(&x->req, 0, sizeof(x->req));
	x->def->build(x->srv, &x->chunk, &x->req);
}

/*
 * ccp_exchange_prepare is the build step: it takes a rate-limit ticket
 * (waiting for one when x is blocking; a non-blocking exchange without
 * room ends with its last outcome marked for a later retry), a token for
 * vendors that use them, and builds the request into x->req.  Returns
 * CCP_STEP_SEND with a ticket held, or CCP_STEP_DONE with x->out set and
 * nothing held (no room, or no token; the token request is logged).  An
 * error gives the ticket back before it escapes.
 */
CcpStep
ccp_exchange_prepare(CcpExchange *x)
{
	const CcpServer *srv = x->srv;
	volatile CcpStep step = CCP_STEP_SEND;

	if (x->ticket == -1)
	{
		if (x->blocking && (srv->rate_count > 0 || srv->max_inflight > 0))
			ccp_progress_wait(CCP_WAIT_RATE);
		x->ticket = ccp_rate_acquire(srv, x->blocking);
		if (x->ticket == -1)
		{
			x->no_room = true;
			/* no room now: the queue's backoff sends it again */
			if (x->out.message == NULL)
				ccp_outcome_transient(&x->out, 0,
									  pstrdup("waiting for the rate limit"));
			x->out.retry = CCP_RETRY_TRANSIENT;
			return CCP_STEP_DONE;
		}
	}

	PG_TRY();
	{
		char	   *error = NULL;
		int			status = 0;
		char	   *token = NULL;

		if (srv->vendor->build_token_request != NULL)
			ccp_progress_wait(CCP_WAIT_TOKEN);
		if (ccp_token_get(srv, x->stale, &token, &error, &status, x->origin))
			ccp_exchange_build(x, token);
		else
		{
			/* nothing went out for the items */
			ccp_outcome_no_token(&x->out, error, status);
			step = CCP_STEP_DONE;
		}
	}
	PG_CATCH();
	{
		ccp_exchange_abandon(x);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (step == CCP_STEP_DONE)
	{
		ccp_exchange_abandon(x);
		ccp_exchange_unsent(x);
	}
	return step;
}

/*
 * ccp_exchange_unsent finishes the durable row written for x's next send
 * (x->intent_id, see ccp_reqlog_intent) with x->out when that send never
 * happened (no ticket, no token, an error before the transfer started), so
 * that the row does not read "outcome unknown" for a request that never
 * left.  Does nothing without such a row.
 */
void
ccp_exchange_unsent(CcpExchange *x)
{
	if (x->intent_id == 0)
		return;
	ccp_reqlog_write(x->srv, x->def->name, x->chunk.items, x->chunk.nitems,
					 &x->out, 0, x->origin, x->request_id, x->request_ids,
					 x->nrequest_ids, x->scope, x->intent_id);
	x->intent_id = 0;
}

/*
 * ccp_exchange_answer is the answer and decide steps: it gives back the
 * ticket, classifies the HTTP result into x->out, logs the request, and
 * decides.  A refused token is refreshed and the chunk sent again once
 * (CCP_STEP_AGAIN: call ccp_exchange_prepare again).  A vendor that says
 * "too fast" gets the limiter's penalty; a blocking exchange then waits
 * and tries once more, the worker's leaves it to the queue's backoff.
 * Anything else is CCP_STEP_DONE.
 */
CcpStep
ccp_exchange_answer(CcpExchange *x, const CcpHttpResult *res)
{
	const CcpServer *srv = x->srv;

	ccp_exchange_abandon(x);
	ccp_classify_answer(srv, x->def, &x->chunk, res, &x->out);
	/* each send is its own record, libcurl's own resends included */
	if (res->resends > 0)
		ccp_reqlog_resent(srv, x->def->name, x->chunk.items, x->chunk.nitems,
						  x->origin, x->request_id, x->request_ids,
						  x->nrequest_ids, x->scope, res->resends);
	ccp_reqlog_write(srv, x->def->name, x->chunk.items, x->chunk.nitems,
					 &x->out, res->elapsed_ms, x->origin, x->request_id,
					 x->request_ids, x->nrequest_ids, x->scope, x->intent_id);
	/* a send after this one (a new token) gets a row of its own */
	x->intent_id = 0;

	if (x->out.retry == CCP_RETRY_TOKEN && !x->token_retried &&
		srv->vendor->build_token_request != NULL)
	{
		x->token_retried = true;
		x->stale = x->chunk.token;
		return CCP_STEP_AGAIN;
	}
	if (x->out.retry == CCP_RETRY_RATE)
	{
		ccp_rate_penalize(srv);
		if (x->blocking && !x->rate_retried)
		{
			x->rate_retried = true;
			return CCP_STEP_AGAIN;
		}
	}
	return CCP_STEP_DONE;
}

/*
 * ccp_exchange drives one chunk to its final outcome the blocking way, as
 * the synchronous SQL functions do (see ccp_exchange_init for what items
 * must be), and fills out.  Each send has a durable intent first (see
 * intent.c): the first one intent_id, made by the caller
 * (ccp_reqlog_sync_intents; 0: none yet), a second one (a new token, a
 * retry after "too fast") its own.  Errors escape only for cancels and
 * internal failures, with the ticket given back.
 */
void
ccp_exchange(const CcpServer *srv, const CcpOpDef *def,
			 const void *params, char **items, int nitems,
			 CcpOrigin origin, int64 request_id, int64 intent_id,
			 CcpOutcome *out)
{
	CcpExchange x;

	ccp_exchange_init(&x, srv, def, params, items, nitems, NULL, origin,
					  request_id, true);
	for (;;)
	{
		CcpHttpResult res;

		if (ccp_exchange_prepare(&x) == CCP_STEP_DONE)
			break;
		PG_TRY();
		{
			if (intent_id == 0 && origin == CCP_ORIGIN_SYNC)
				ccp_reqlog_sync_intents(srv, def, &x.chunk, 1, &intent_id);
			x.intent_id = intent_id;
			intent_id = 0;
			ccp_reqlog_sending(x.intent_id);
			ccp_progress_wait(CCP_WAIT_HTTP);
			ccp_http_perform(&srv->http, &x.req, &res);
		}
		PG_CATCH();
		{
			ccp_exchange_abandon(&x);
			PG_RE_THROW();
		}
		PG_END_TRY();
		if (ccp_exchange_answer(&x, &res) == CCP_STEP_DONE)
			break;
	}
	*out = x.out;
}

/*
 * ccp_exchange_per_part returns how many requests a synchronous call of
 * def sends to srv for nitems items with each part of its params: one per
 * chunk of the server's batch size, or one for a request the params alone
 * define.
 */
static int
ccp_exchange_per_part(const CcpServer *srv, const CcpOpDef *def, int nitems)
{
	int			batch = Min(srv->batch_size, def->max_batch);

	return (nitems == 0) ? 1 : (nitems - 1) / batch + 1;
}

/*
 * ccp_exchange_requests returns how many requests a synchronous call of
 * def sends to srv for nitems items (validated, distinct) and params: the
 * requests of each part of the params (ccp_exchange_per_part), times the
 * parts the params need.
 */
int
ccp_exchange_requests(const CcpServer *srv, const CcpOpDef *def,
					  const void *params, int nitems)
{
	return ccp_exchange_per_part(srv, def, nitems) *
		list_length(ccp_params_split(def, params));
}

/*
 * ccp_exchange_chunks cuts a synchronous call's items (validated,
 * distinct; none for a request the params alone define) into the
 * requests ccp_exchange_requests counts, in the order they are sent, and
 * calls fn for each with its params, items, number (from 1), whether it
 * is the items' last request, and, with intents, the log_id of its
 * durable intent.  The intents are made ahead, one sync for each window of
 * requests (see intent.c): one for the first request, then twice as many
 * each time, up to CCP_INTENT_WINDOW.  Each call of fn runs in a memory
 * context that is reset after it.
 */
void
ccp_exchange_chunks(const CcpServer *srv, const CcpOpDef *def,
					const void *params, char **items, int nitems,
					bool intents, CcpChunkFn fn, void *arg)
{
	MemoryContext chunk_cxt;
	MemoryContext old;
	List	   *parts = ccp_params_split(def, params);
	int			batch = Min(srv->batch_size, def->max_batch);
	int			per_part = ccp_exchange_per_part(srv, def, nitems);
	int64		nchunks = (int64) list_length(parts) * per_part;
	CcpChunk	win[CCP_INTENT_WINDOW];
	int64		win_ids[CCP_INTENT_WINDOW];
	int64		win_start = 0;
	int			win_len = 0;
	int			window = 1;

	chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "ccpurge chunk",
									  ALLOCSET_DEFAULT_SIZES);
	for (int64 c = 0; c < nchunks; c++)
	{
		const CcpChunk *chunk;
		int64		part = c / per_part;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(chunk_cxt);
		if (c == win_start + win_len)
		{
			win_start = c;
			win_len = (int) Min(window, nchunks - c);
			window = Min(window * 2, CCP_INTENT_WINDOW);
			memset(win, 0, sizeof(win));
			memset(win_ids, 0, sizeof(win_ids));
			for (int w = 0; w < win_len; w++)
			{
				int			start = (int) ((c + w) % per_part) * batch;

				win[w].params = list_nth(parts, (int) ((c + w) / per_part));
				win[w].nitems = Min(batch, nitems - start);
				win[w].items = win[w].nitems > 0 ? items + start : NULL;
			}
			if (intents)
				ccp_reqlog_sync_intents(srv, def, win, win_len, win_ids);
		}
		chunk = &win[c - win_start];
		fn(chunk->params, chunk->items, chunk->nitems, (int) c + 1,
		   part == list_length(parts) - 1, win_ids[c - win_start], arg);
		MemoryContextSwitchTo(old);
		MemoryContextReset(chunk_cxt);
	}
	MemoryContextDelete(chunk_cxt);
}

/*
 * ccp_exchange_settle decides what becomes of queued items after an
 * attempt with outcome out, their attempts-th, the oldest of them queued
 * queued_ms ago: done; failed when refused for good or, with
 * ccpurge.max_attempts set (not 0), at that many attempts; expired (failed
 * too) when transient failures have gone on past ccpurge.retry_for;
 * otherwise queued again after *delay_ms (ccp_backoff_ms, and no sooner
 * than the limiter allows after a "too fast").
 */
CcpSettle
ccp_exchange_settle(const CcpServer *srv, const CcpOutcome *out,
					int attempts, int64 queued_ms, int64 *delay_ms)
{
	*delay_ms = 0;
	if (out->ok)
		return CCP_SETTLE_DONE;
	if (out->retry == CCP_FINAL ||
		(ccp_max_attempts > 0 && attempts >= ccp_max_attempts))
		return CCP_SETTLE_FAILED;
	if (queued_ms >= (int64) ccp_retry_for_s * 1000)
		return CCP_SETTLE_EXPIRED;

	*delay_ms = ccp_backoff_ms(attempts);
	if (out->retry == CCP_RETRY_RATE)
		*delay_ms = Max(*delay_ms, ccp_rate_next_ms(srv));
	return CCP_SETTLE_RETRY;
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
