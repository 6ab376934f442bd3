/*-------------------------------------------------------------------------
 *
 * outcome.c
 *	  Outcomes of a vendor request: the constructors for a request that got
 *	  no answer a vendor file could judge, the cleaning of vendor text in
 *	  an outcome, and whether a request erased every item it carried.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

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
 * ccp_outcome_clean makes an outcome's code and message safe to show and
 * store: secrets and token redacted (see ccp_redact), the message cut to
 * CCP_MAX_MESSAGE_BYTES and the code to CCP_MAX_CODE_BYTES.  The texts must
 * already be valid in the database encoding (ccp_vendor_text).
 */
void
ccp_outcome_clean(const CcpServer *srv, CcpOutcome *out, const char *token)
{
	if (out->message != NULL)
		out->message = ccp_clip(ccp_redact(srv, out->message, token),
								CCP_MAX_MESSAGE_BYTES);
	if (out->code != NULL)
		out->code = ccp_clip(ccp_redact(srv, out->code, token),
							 CCP_MAX_CODE_BYTES);
}

/*
 * ccp_outcome_all_ok tells whether a request erased every one of its nitems
 * items: the request succeeded and, where the vendor answered per item,
 * each item did.  This is the request log's "ok".
 */
bool
ccp_outcome_all_ok(const CcpOutcome *out, int nitems)
{
	if (!out->ok)
		return false;
	if (out->item_ok != NULL)
	{
		for (int i = 0; i < nitems; i++)
		{
			if (!out->item_ok[i])
				return false;
		}
	}
	return true;
}
