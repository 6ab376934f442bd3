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

/*
 * ccp_outcome_from_transport turns a request that got no usable HTTP
 * answer into an outcome: not ok, transient, with the transport's reason.
 */
void
ccp_outcome_from_transport(const CcpHttpResult *res, CcpOutcome *out)
{
	out->ok = false;
	out->http_status = res->status > 0 ? res->status : 0;
	out->code = NULL;
	out->message = psprintf("%s: %s",
							res->timed_out ? "request timed out" : "request failed",
							res->error ? res->error : "unknown transport error");
	out->success_count = -1;
	out->retry = CCP_RETRY_TRANSIENT;
}

/*
 * ccp_classify_answer fills out from an HTTP result, whether it is a
 * transport failure or an answer for the vendor to read.  token is the one
 * the request carried (NULL if none): like the mapping's secrets, it is
 * redacted from whatever the vendor sent back.
 */
void
ccp_classify_answer(const CcpServer *srv, const CcpOpDef *def,
					const CcpHttpResult *res, const char *token,
					CcpOutcome *out)
{
	memset(out, 0, sizeof(*out));
	out->success_count = -1;
	if (res->transport_error)
		ccp_outcome_from_transport(res, out);
	else
	{
		out->http_status = res->status;
		def->parse(srv, res, out);
		if (out->message == NULL)
			out->message = pstrdup(out->ok ? "ok" : "failed");
		/* a vendor that says ok over a non-2xx status is not believed */
		if (out->ok && (res->status < 200 || res->status > 299))
			out->ok = false;
	}
	ccp_outcome_clean(srv, out, token);
}

/*
 * ccp_exchange_once takes a rate-limit ticket, a token and sends one
 * request, giving the ticket back on every path.  Returns false with
 * *error set when no token could be had (nothing was sent then).
 */
static bool
ccp_exchange_once(const CcpServer *srv, const CcpOpDef *def,
				  const CcpParams *params, char **items, int nitems,
				  const char *stale, CcpOrigin origin, char **token,
				  char **error, CcpHttpResult *res)
{
	int			ticket = ccp_rate_acquire(srv, true);
	volatile bool have_token = false;

	PG_TRY();
	{
		have_token = ccp_token_get(srv, stale, token, error, origin);
		if (have_token)
		{
			CcpHttpRequest req;

			memset(&req, 0, sizeof(req));
			def->build(srv, params, items, nitems, *token, &req);
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
 * failures.  Every HTTP request made is added to the request log.
 */
void
ccp_exchange(const CcpServer *srv, const CcpOpDef *def,
			 const CcpParams *params, char **items, int nitems,
			 CcpOrigin origin, int64 request_id, CcpOutcome *out)
{
	bool		token_retried = false;
	bool		rate_retried = false;
	char	   *stale = NULL;

	for (;;)
	{
		CcpHttpResult res;
		char	   *token = NULL;
		char	   *error = NULL;

		if (!ccp_exchange_once(srv, def, params, items, nitems, stale, origin,
							   &token, &error, &res))
		{
			/* nothing went out for the items; the token request is logged */
			memset(out, 0, sizeof(*out));
			out->ok = false;
			out->success_count = -1;
			out->message = psprintf("could not get a token: %s", error);
			out->retry = CCP_RETRY_TRANSIENT;
			return;
		}

		ccp_classify_answer(srv, def, &res, token, out);
		ccp_reqlog_write(srv, def->name, items, nitems, out, res.elapsed_ms,
						 origin, request_id);

		if (out->retry == CCP_RETRY_TOKEN && !token_retried &&
			srv->vendor->build_token_request != NULL)
		{
			token_retried = true;
			stale = token;
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
