/*-------------------------------------------------------------------------
 *
 * vendor.c
 *	  The vendor table.
 *
 * Adding a vendor means writing one vendor_<name>.c that defines a
 * CcpVendor and adding it to ccp_vendors[] below.  Everything else (option
 * validation, token cache, limiter, SQL functions, queue) finds vendors and
 * their operations through this table.  What vendor files share lives in
 * wire.c (request and answer bodies), vtext.c (text from outside) and
 * outcome.c (outcomes).
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"

/* each defined in its vendor_<name>.c */
extern const CcpVendor ccp_vendor_cec;
extern const CcpVendor ccp_vendor_isales;
extern const CcpVendor ccp_vendor_ozonetel;
extern const CcpVendor ccp_vendor_webhook;

static const CcpVendor *const ccp_vendors[] = {
	&ccp_vendor_cec,
	&ccp_vendor_isales,
	&ccp_vendor_ozonetel,
	&ccp_vendor_webhook,
};

#define CCP_NVENDORS lengthof(ccp_vendors)

/*
 * ccp_server_account names the vendor account srv uses, as a 64-bit hash
 * of its vendor, URL and account identity (the vendor's account_cred, if
 * any), never 0: servers of one account share one token, one rate window
 * and one in-flight cap (auth.c, ratelimit.c).  A hash keeps the identity
 * out of shared memory and of the token file.
 */
uint64
ccp_server_account(const CcpServer *srv)
{
	const CcpVendor *vendor = srv->vendor;
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) vendor->name,
							strlen(vendor->name), 0);
	h = hash_combine64(h, hash_bytes_extended((const unsigned char *) srv->url,
											  strlen(srv->url), 1));
	if (vendor->account_cred >= 0 && srv->cred[vendor->account_cred])
		h = hash_combine64(h,
						   hash_bytes_extended((const unsigned char *) srv->cred[vendor->account_cred],
											   strlen(srv->cred[vendor->account_cred]), 2));
	return (h == 0) ? 1 : h;
}

/* ccp_vendor_by_name returns the vendor called name, or NULL. */
const CcpVendor *
ccp_vendor_by_name(const char *name)
{
	for (int i = 0; i < CCP_NVENDORS; i++)
	{
		if (strcmp(ccp_vendors[i]->name, name) == 0)
			return ccp_vendors[i];
	}
	return NULL;
}

/* ccp_vendor_count returns the number of known vendors. */
int
ccp_vendor_count(void)
{
	return CCP_NVENDORS;
}

/* ccp_vendor_at returns vendor number i, 0 <= i < ccp_vendor_count(). */
const CcpVendor *
ccp_vendor_at(int i)
{
	Assert(i >= 0 && i < CCP_NVENDORS);
	return ccp_vendors[i];
}

/*
 * ccp_op_by_name returns the operation called name (as ccpurge_enqueue
 * spells it) and its vendor, or NULL.
 */
const CcpOpDef *
ccp_op_by_name(const char *name, const CcpVendor **vendor)
{
	for (int i = 0; i < CCP_NVENDORS; i++)
	{
		for (int j = 0; j < ccp_vendors[i]->nops; j++)
		{
			if (strcmp(ccp_vendors[i]->ops[j].name, name) == 0)
			{
				if (vendor)
					*vendor = ccp_vendors[i];
				return &ccp_vendors[i]->ops[j];
			}
		}
	}
	return NULL;
}

/*
 * ccp_op_lookup returns the operation called name and its vendor, for a
 * name a user gave (ccpurge_enqueue, a trigger's arguments).  An unknown
 * name is an ERROR whose hint lists the valid operations.
 */
const CcpOpDef *
ccp_op_lookup(const char *name, const CcpVendor **vendor)
{
	const CcpOpDef *def = ccp_op_by_name(name, vendor);

	if (def == NULL)
	{
		StringInfoData ops;

		initStringInfo(&ops);
		for (int i = 0; i < CCP_NVENDORS; i++)
		{
			for (int j = 0; j < ccp_vendors[i]->nops; j++)
				appendStringInfo(&ops, "%s%s", ops.len > 0 ? ", " : "",
								 ccp_vendors[i]->ops[j].name);
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown ccpurge operation \"%s\"", name),
				 errhint("Valid operations are: %s.", ops.data)));
	}
	return def;
}
