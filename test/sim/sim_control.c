/*-------------------------------------------------------------------------
 *
 * sim_control.c
 *	  The simulator's control interface under /_sim/: state, deleted sets,
 *	  the request log, reset, configuration, fault injection, and the
 *	  vendors' own control calls (/_sim/<vendor>/...).
 *
 * Control calls need no authentication and are never counted or logged as
 * vendor requests.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* ctl_ok answers {"ok": true}. */
static void
ctl_ok(SimRequest *req)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "ok", 1);
	sim_reply(req, 200, o, NULL, NULL);
}

/* ctl_error answers {"error": message} with the given HTTP status. */
static void
ctl_error(SimRequest *req, int status, const char *message)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "error", message);
	sim_reply(req, status, o, NULL, message);
}

/* ctl_query_int returns the integer query parameter name, or def. */
static int
ctl_query_int(SimRequest *req, const char *name, int def)
{
	size_t		nlen = strlen(name);
	const char *p = req->query;

	while (p && *p)
	{
		const char *end = strchr(p, '&');
		int			v;

		if (strncmp(p, name, nlen) == 0 && p[nlen] == '=')
		{
			char		buf[16];
			size_t		len = (end ? (size_t) (end - p) : strlen(p)) - nlen - 1;

			if (len < sizeof(buf))
			{
				memcpy(buf, p + nlen + 1, len);
				buf[len] = '\0';
				if (sim_parse_int(buf, 0, SIM_LOG_MAX, &v))
					return v;
			}
			return -1;
		}
		p = end ? end + 1 : NULL;
	}
	return def;
}

/* ctl_json_int reads an optional integer member; false if malformed. */
static bool
ctl_json_int(cJSON *obj, const char *name, int min, int max, int *out)
{
	cJSON	   *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (v == NULL)
		return true;
	if (!cJSON_IsNumber(v) || v->valuedouble != (double) (long) v->valuedouble ||
		v->valuedouble < min || v->valuedouble > max)
		return false;
	*out = (int) v->valuedouble;
	return true;
}

/*
 * ctl_header_text says whether s may be sent as an HTTP header value:
 * printable ASCII and spaces, at most 200 bytes; empty only if allow_empty.
 */
static bool
ctl_header_text(const char *s, bool allow_empty)
{
	size_t		len = strlen(s);

	if (len > 200 || (len == 0 && !allow_empty))
		return false;
	for (; *s; s++)
		if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
			return false;
	return true;
}

/*
 * ctl_retry_after reads the optional retry_after member of a fault: a
 * string fit for a header, or a non-negative integer written in decimal to
 * buf.  Stores NULL when absent; returns false if malformed.
 */
static bool
ctl_retry_after(cJSON *obj, char *buf, size_t bufsize, const char **out)
{
	cJSON	   *v = cJSON_GetObjectItemCaseSensitive(obj, "retry_after");

	*out = NULL;
	if (v == NULL)
		return true;
	if (cJSON_IsString(v))
	{
		if (!ctl_header_text(v->valuestring, false))
			return false;
		*out = v->valuestring;
		return true;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 ||
		v->valuedouble != (double) (long) v->valuedouble)
		return false;
	snprintf(buf, bufsize, "%ld", (long) v->valuedouble);
	*out = buf;
	return true;
}

/* ctl_fault handles POST /_sim/fault. */
static void
ctl_fault(SimRequest *req)
{
	static const char *const keys[] = {
		"count", "kind", "status", "delay_ms", "path", "body", "content_type",
		"retry_after", NULL
	};
	cJSON	   *body = sim_parse_object(req);
	cJSON	   *kind;
	cJSON	   *path;
	cJSON	   *text;
	cJSON	   *ctype;
	cJSON	   *item;
	SimFaultSpec spec;
	char		retry_buf[32];
	int			k;

	if (body == NULL)
	{
		ctl_error(req, 400, "the body must be a JSON object");
		return;
	}
	cJSON_ArrayForEach(item, body)
	{
		int			i;

		for (i = 0; keys[i]; i++)
			if (strcmp(item->string, keys[i]) == 0)
				break;
		if (keys[i] == NULL)
		{
			cJSON_Delete(body);
			ctl_error(req, 400, "unknown fault key");
			return;
		}
	}
	kind = cJSON_GetObjectItemCaseSensitive(body, "kind");
	path = cJSON_GetObjectItemCaseSensitive(body, "path");
	text = cJSON_GetObjectItemCaseSensitive(body, "body");
	ctype = cJSON_GetObjectItemCaseSensitive(body, "content_type");
	if (!cJSON_IsString(kind) ||
		(k = sim_fault_kind_from_name(kind->valuestring)) == SIM_FAULT_NONE)
	{
		cJSON_Delete(body);
		ctl_error(req, 400, "kind must be one of status, delay, reset, garbage, oversize, expire_tokens, body");
		return;
	}
	memset(&spec, 0, sizeof(spec));
	spec.kind = k;
	spec.count = 1;
	spec.status = 503;
	spec.delay_ms = 1000;
	if (!ctl_json_int(body, "count", 1, 1000000, &spec.count) ||
		!ctl_json_int(body, "status", 100, 599, &spec.status) ||
		!ctl_json_int(body, "delay_ms", 0, 600000, &spec.delay_ms) ||
		(path != NULL && !cJSON_IsString(path)))
	{
		cJSON_Delete(body);
		ctl_error(req, 400, "invalid count, status, delay_ms or path");
		return;
	}
	if (!ctl_retry_after(body, retry_buf, sizeof(retry_buf), &spec.retry_after) ||
		(spec.retry_after != NULL && k != SIM_FAULT_STATUS && k != SIM_FAULT_BODY))
	{
		cJSON_Delete(body);
		ctl_error(req, 400, "retry_after must be a header value or a non-negative integer, and goes with kind status or body only");
		return;
	}
	if ((k == SIM_FAULT_BODY) != (text != NULL) ||
		(text != NULL && !cJSON_IsString(text)) ||
		(ctype != NULL && (k != SIM_FAULT_BODY || !cJSON_IsString(ctype) ||
						   !ctl_header_text(ctype->valuestring, true))))
	{
		cJSON_Delete(body);
		ctl_error(req, 400, "kind body needs body, a string, and takes an optional content_type; other kinds take neither");
		return;
	}
	if (path && path->valuestring[0])
		spec.path = path->valuestring;
	if (text)
	{
		spec.body = text->valuestring;
		spec.body_len = strlen(text->valuestring);
	}
	if (ctype)
		spec.content_type = ctype->valuestring;
	sim_lock();
	if (k == SIM_FAULT_EXPIRE)
	{
		for (int v = 0; v < sim_nvendors; v++)
			if (sim_vendors[v]->expire_tokens)
				sim_vendors[v]->expire_tokens();
	}
	else
		sim_fault_add(&spec);
	sim_unlock();
	cJSON_Delete(body);
	ctl_ok(req);
}

/*
 * sim_control answers one control request.  Takes the state lock itself
 * where needed.
 */
void
sim_control(SimRequest *req)
{
	const char *p = req->path + 5;	/* after "/_sim" */
	bool		get = strcmp(req->method, "GET") == 0;
	bool		post = strcmp(req->method, "POST") == 0;

	if (strcmp(p, "/state") == 0 && get)
	{
		cJSON	   *o;

		sim_lock();
		o = sim_state_json();
		sim_unlock();
		sim_reply(req, 200, o, NULL, NULL);
	}
	else if (strncmp(p, "/deleted/", 9) == 0 && get)
	{
		struct SimSet *set = sim_deleted_set(p + 9);
		cJSON	   *o;

		if (set == NULL)
		{
			ctl_error(req, 404, "no such set");
			return;
		}
		sim_lock();
		o = sim_set_to_json(set);
		sim_unlock();
		sim_reply(req, 200, o, NULL, NULL);
	}
	else if (strcmp(p, "/log") == 0 && get)
	{
		int			n = ctl_query_int(req, "n", 100);
		cJSON	   *o;

		if (n < 0)
		{
			ctl_error(req, 400, "n must be an integer from 0 to 10000");
			return;
		}
		sim_lock();
		o = sim_log_json(n);
		sim_unlock();
		sim_reply(req, 200, o, NULL, NULL);
	}
	else if (strcmp(p, "/reset") == 0 && post)
	{
		sim_lock();
		sim_state_reset();
		sim_fault_clear();
		sim_unlock();
		ctl_ok(req);
	}
	else if (strcmp(p, "/config") == 0 && post)
	{
		cJSON	   *body = sim_parse_object(req);
		const char *err;

		if (body == NULL)
		{
			ctl_error(req, 400, "the body must be a JSON object");
			return;
		}
		sim_lock();
		err = sim_config_apply(body);
		sim_unlock();
		cJSON_Delete(body);
		if (err)
			ctl_error(req, 400, err);
		else
			ctl_ok(req);
	}
	else if (strcmp(p, "/fault") == 0 && post)
		ctl_fault(req);
	else if (strcmp(p, "/fault/clear") == 0 && post)
	{
		sim_lock();
		sim_fault_clear();
		sim_unlock();
		ctl_ok(req);
	}
	else
	{
		for (int v = 0; v < sim_nvendors; v++)
		{
			const SimVendor *vendor = sim_vendors[v];
			size_t		len = strlen(vendor->name);

			if (vendor->control && post && p[0] == '/' &&
				strncmp(p + 1, vendor->name, len) == 0 && p[1 + len] == '/')
			{
				vendor->control(req, p + 2 + len);
				return;
			}
		}
		ctl_error(req, 404, "no such control call");
	}
}
