/*-------------------------------------------------------------------------
 *
 * ccpurge-sim.c
 *	  The vendor simulator's entry point: command line, the listening
 *	  socket, the libmicrohttpd glue, request dispatch, fault injection
 *	  (and the hook into chaos mode, sim_chaos.c) and the waits that let a
 *	  slow request sleep without holding up others.
 *
 * Usage: ccpurge-sim [--port N] [--port-file FILE] [--threads N]
 *                    [--tls-cert FILE --tls-key FILE]
 *                    [--control-port-file FILE]
 *                    [--cec-app-key K] [--cec-app-secret S] ...
 *
 * The server listens on 127.0.0.1 only.  With --threads 0 (the default)
 * every connection has its own thread and a waiting request sleeps in it;
 * with --threads N a pool of N threads polls every connection and a waiting
 * request is suspended and resumed by a timer thread.
 *
 * With --tls-cert and --tls-key the port speaks HTTPS (libmicrohttpd's
 * GnuTLS support) instead of plain HTTP; nothing else changes.  With
 * --control-port-file a second daemon on another free loopback port serves
 * the control interface, and only that, over plain HTTP, so a test client
 * without TLS support can still drive an HTTPS simulator.
 *
 * To add a vendor, write sim_<vendor>.c defining a SimVendor and list it in
 * sim_vendors below.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

/* The vendors, in the order /_sim/state lists them. */
const SimVendor *const sim_vendors[] = {
	&sim_vendor_cec,
	&sim_vendor_isales,
	&sim_vendor_ozonetel,
};
const int	sim_nvendors = sizeof(sim_vendors) / sizeof(sim_vendors[0]);

/* A pending fault.  Guarded by the state lock. */
typedef struct SimFault
{
	struct SimFault *next;
	int			kind;
	int			count;
	int			status;
	int			delay_ms;
	char	   *path;			/* NULL: any vendor request */
	char	   *body;			/* "body" kind: the answer, body_len bytes */
	size_t		body_len;
	char	   *content_type;	/* "body" kind: "" for no header */
	char	   *retry_after;	/* NULL: no Retry-After header */
} SimFault;

/* A suspended request waiting for its wake-up time (pool mode). */
typedef struct SimTimer
{
	struct SimTimer *next;
	int64_t		wake_at_ms;
	struct MHD_Connection *conn;
} SimTimer;

static SimFault *sim_faults;
static bool sim_pool_mode;

/*
 * The access handler's closure on the control-only daemon; the main daemon
 * passes NULL.
 */
static int	sim_control_only_tag;

#define SIM_CONTROL_ONLY	((void *) &sim_control_only_tag)
static volatile bool sim_stopping;

/* Guards sim_timers and sim_stopping for waits; sim_wait_cond wakes them. */
static pthread_mutex_t sim_wait_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sim_wait_cond;
static SimTimer *sim_timers;

/* ------------------------------------------------------------ replies */

/*
 * sim_reply sets req's answer to the JSON body (which it consumes), with
 * code and message for the request log.  A NULL code logs the HTTP status.
 */
void
sim_reply(SimRequest *req, int status, cJSON *body, const char *code,
		  const char *message)
{
	char	   *text = cJSON_PrintUnformatted(body);

	cJSON_Delete(body);
	if (text == NULL)
		abort();
	sim_reply_raw(req, status, "application/json", text, strlen(text));
	if (code)
		snprintf(req->code, sizeof(req->code), "%s", code);
	else
		snprintf(req->code, sizeof(req->code), "%d", status);
	snprintf(req->message, sizeof(req->message), "%s", message ? message : "");
}

/*
 * sim_reply_raw sets req's answer to body, a malloc'd buffer of len bytes
 * that req now owns.
 */
void
sim_reply_raw(SimRequest *req, int status, const char *ctype, char *body,
			  size_t len)
{
	free(req->reply);
	req->status = status;
	req->content_type = ctype;
	req->reply = body;
	req->reply_len = len;
	snprintf(req->code, sizeof(req->code), "%d", status);
	req->message[0] = '\0';
}

/* sim_reply_error answers with {"error": message}. */
static void
sim_reply_error(SimRequest *req, int status, const char *message)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "error", message);
	sim_reply(req, status, o, NULL, message);
}

/*
 * sim_request_header returns the value of request header name (any case),
 * or NULL.
 */
const char *
sim_request_header(SimRequest *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* -------------------------------------------------------------- faults */

/* sim_fault_kind_from_name maps a fault kind name to SIM_FAULT_*, or 0. */
int
sim_fault_kind_from_name(const char *name)
{
	static const char *const names[] = {
		NULL, "status", "delay", "reset", "garbage", "oversize", "expire_tokens",
		"body"
	};

	for (int i = 1; i < (int) (sizeof(names) / sizeof(names[0])); i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return SIM_FAULT_NONE;
}

/* sim_memdup returns a malloc'd, NUL-terminated copy of len bytes of s. */
static char *
sim_memdup(const char *s, size_t len)
{
	char	   *copy = malloc(len + 1);

	if (copy == NULL)
		abort();
	memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

/* sim_strdup_or_null returns a malloc'd copy of s, or NULL if s is NULL. */
static char *
sim_strdup_or_null(const char *s)
{
	return s ? sim_memdup(s, strlen(s)) : NULL;
}

/* sim_fault_free releases one fault. */
static void
sim_fault_free(SimFault *f)
{
	free(f->path);
	free(f->body);
	free(f->content_type);
	free(f->retry_after);
	free(f);
}

/*
 * sim_fault_add queues the fault spec describes, for the next spec->count
 * vendor requests whose path contains spec->path (NULL: any).  Caller holds
 * the state lock.
 */
void
sim_fault_add(const SimFaultSpec *spec)
{
	SimFault   *f = calloc(1, sizeof(SimFault));
	SimFault  **p = &sim_faults;

	if (f == NULL)
		abort();
	f->kind = spec->kind;
	f->count = spec->count;
	f->status = spec->status;
	f->delay_ms = spec->delay_ms;
	f->path = sim_strdup_or_null(spec->path);
	if (spec->kind == SIM_FAULT_BODY)
	{
		f->body = sim_memdup(spec->body ? spec->body : "", spec->body_len);
		f->body_len = spec->body_len;
		f->content_type = sim_strdup_or_null(spec->content_type ?
											  spec->content_type :
											  "application/json");
	}
	f->retry_after = sim_strdup_or_null(spec->retry_after);
	while (*p)
		p = &(*p)->next;
	*p = f;
}

/* sim_fault_clear drops every pending fault.  Caller holds the state lock. */
void
sim_fault_clear(void)
{
	while (sim_faults)
	{
		SimFault   *next = sim_faults->next;

		sim_fault_free(sim_faults);
		sim_faults = next;
	}
}

/*
 * sim_fault_take finds the first pending fault that matches req's path,
 * uses up one of its count, and copies it into req.  Caller holds the
 * state lock.
 */
static void
sim_fault_take(SimRequest *req)
{
	SimFault  **p;

	for (p = &sim_faults; *p; p = &(*p)->next)
	{
		SimFault   *f = *p;

		if (f->path && strstr(req->path, f->path) == NULL)
			continue;
		req->fault_kind = f->kind;
		req->fault_status = f->status;
		req->delay_ms = f->kind == SIM_FAULT_DELAY ? f->delay_ms : 0;
		req->fault_body_len = f->body_len;
		if (--f->count <= 0)
		{
			/* the last use: hand the strings over instead of copying */
			req->fault_body = f->body;
			req->fault_ctype = f->content_type;
			req->fault_retry_after = f->retry_after;
			f->body = f->content_type = f->retry_after = NULL;
			*p = f->next;
			sim_fault_free(f);
		}
		else
		{
			if (f->body)
				req->fault_body = sim_memdup(f->body, f->body_len);
			req->fault_ctype = sim_strdup_or_null(f->content_type);
			req->fault_retry_after = sim_strdup_or_null(f->retry_after);
		}
		return;
	}
}

/*
 * sim_pad_reply turns req's JSON object answer into one of more than
 * SIM_OVERSIZE_BODY bytes by adding a "padding" member in front.
 */
static void
sim_pad_reply(SimRequest *req)
{
	static const char head[] = "{\"padding\":\"";
	size_t		pad = SIM_OVERSIZE_BODY;
	size_t		rest = req->reply_len;
	size_t		len;
	char	   *buf;
	char	   *p;

	if (rest < 2 || req->reply[0] != '{')
		return;
	len = sizeof(head) - 1 + pad + 2 + (rest - 1);
	buf = malloc(len + 1);
	if (buf == NULL)
		abort();
	p = buf;
	memcpy(p, head, sizeof(head) - 1);
	p += sizeof(head) - 1;
	memset(p, 'x', pad);
	p += pad;
	*p++ = '"';
	if (rest > 2)
		*p++ = ',';
	else
		len--;
	memcpy(p, req->reply + 1, rest - 1);
	p += rest - 1;
	*p = '\0';
	free(req->reply);
	req->reply = buf;
	req->reply_len = p - buf;
}

/* ----------------------------------------------------------- dispatch */

/*
 * sim_match says whether path matches pattern, storing the segments that
 * "*" matched into req->seg.
 */
static bool
sim_match(SimRequest *req, const char *pattern, const char *path)
{
	int			nseg = 0;
	const char *segs[SIM_MAX_SEGS];
	size_t		lens[SIM_MAX_SEGS];

	while (*pattern && *path)
	{
		if (*pattern == '*')
		{
			const char *start = path;

			while (*path && *path != '/')
				path++;
			if (path == start || nseg == SIM_MAX_SEGS)
				return false;
			segs[nseg] = start;
			lens[nseg++] = path - start;
			pattern++;
		}
		else if (*pattern++ != *path++)
			return false;
	}
	if (*pattern || *path)
		return false;
	for (int i = 0; i < req->nseg; i++)
		free(req->seg[i]);
	for (int i = 0; i < nseg; i++)
		req->seg[i] = strndup(segs[i], lens[i]);
	req->nseg = nseg;
	return true;
}

/*
 * sim_route_request splits the raw URI into path and query and finds the
 * vendor route; a path that matches a route but not its method is answered
 * 405 by the caller (req->route set, method differs).
 */
static void
sim_route_request(SimRequest *req)
{
	const char *q = strchr(req->raw_uri, '?');
	int			n = sim_route_count();
	int			by_path = -1;

	req->path = q ? strndup(req->raw_uri, q - req->raw_uri) : strdup(req->raw_uri);
	req->query = q ? strdup(q + 1) : NULL;
	req->route_index = -1;
	for (int i = 0; i < n; i++)
	{
		const SimVendor *vendor;
		const SimRoute *route = sim_route_at(i, &vendor);

		if (!sim_match(req, route->pattern, req->path))
			continue;
		if (by_path < 0)
			by_path = i;
		if (strcmp(route->method, req->method) == 0)
		{
			req->route_index = i;
			req->route = route;
			req->vendor = vendor;
			return;
		}
	}
	if (by_path >= 0)
	{
		req->route_index = by_path;
		req->route = sim_route_at(by_path, &req->vendor);
	}
}

/*
 * sim_is_control_path says whether path, a request target with or without
 * its query, is for the control interface.
 */
static bool
sim_is_control_path(const char *path)
{
	size_t		len = strcspn(path, "?");

	return (len >= 6 && strncmp(path, "/_sim/", 6) == 0) ||
		(len == 5 && strncmp(path, "/_sim", 5) == 0);
}

/* sim_is_control says whether req is for the control interface. */
static bool
sim_is_control(SimRequest *req)
{
	return sim_is_control_path(req->path);
}

/*
 * sim_begin runs once per request when its body is complete: routes it,
 * counts it and picks its fault, or else its chaos (only for a request
 * the route's handler would get).
 */
static void
sim_begin(SimRequest *req)
{
	sim_route_request(req);
	if (sim_is_control(req))
		return;
	sim_lock();
	if (req->route)
	{
		sim_count_request(req->route_index);
		sim_fault_take(req);
		if (req->fault_kind == SIM_FAULT_NONE &&
			strcmp(req->route->method, req->method) == 0)
			sim_chaos_pick(req);
	}
	sim_inflight_enter(req);
	sim_unlock();
	req->glue_stage = 0;
}

/*
 * sim_step advances req once: it answers control calls, unknown paths and
 * injected faults itself and hands the rest to the vendor's handler.
 */
static SimStep
sim_step(SimRequest *req)
{
	if (sim_is_control(req))
	{
		sim_control(req);
		return SIM_DONE;
	}
	if (req->route == NULL)
	{
		sim_reply_error(req, 404, "no such endpoint");
		return SIM_DONE;
	}
	if (strcmp(req->route->method, req->method) != 0)
	{
		sim_reply_error(req, 405, "method not allowed");
		return SIM_DONE;
	}
	if (req->glue_stage == 0)
	{
		switch (req->fault_kind)
		{
			case SIM_FAULT_STATUS:
				{
					cJSON	   *o = cJSON_CreateObject();

					cJSON_AddStringToObject(o, "error", "injected fault");
					cJSON_AddNumberToObject(o, "status", req->fault_status);
					sim_reply(req, req->fault_status, o, "fault:status",
							  "injected fault");
					req->retry_after = req->fault_retry_after;
					req->fault_retry_after = NULL;
					return SIM_DONE;
				}
			case SIM_FAULT_RESET:
				req->status = 0;
				snprintf(req->code, sizeof(req->code), "fault:reset");
				return SIM_DONE;
			case SIM_FAULT_GARBAGE:
				{
					const char *g = "<html><body>502 this is not JSON</body></html>";

					sim_reply_raw(req, 200, "application/json", strdup(g), strlen(g));
					snprintf(req->code, sizeof(req->code), "fault:garbage");
					return SIM_DONE;
				}
			case SIM_FAULT_BODY:
				sim_reply_raw(req, req->fault_status, req->fault_ctype,
							  req->fault_body, req->fault_body_len);
				req->fault_body = NULL;
				req->retry_after = req->fault_retry_after;
				req->fault_retry_after = NULL;
				snprintf(req->code, sizeof(req->code), "fault:body");
				snprintf(req->message, sizeof(req->message), "injected body");
				return SIM_DONE;
			default:
				break;
		}
		if (req->chaos_kind != SIM_CHAOS_NONE && req->chaos_kind != SIM_CHAOS_SLOW)
		{
			sim_chaos_answer(req);
			return SIM_DONE;
		}
		req->glue_stage = 1;
		if (req->delay_ms > 0 && !(req->route->flags & SIM_ROUTE_OWN_DELAY))
		{
			req->wake_at_ms = sim_mono_ms() + req->delay_ms;
			req->delay_ms = 0;
			return SIM_WAIT;
		}
	}
	if (req->route->handler(req) == SIM_WAIT)
		return SIM_WAIT;
	if (req->fault_kind == SIM_FAULT_OVERSIZE)
	{
		sim_pad_reply(req);
		snprintf(req->code, sizeof(req->code), "fault:oversize");
	}
	if (req->chaos_kind == SIM_CHAOS_SLOW)
		snprintf(req->code, sizeof(req->code), "chaos:slow");
	return SIM_DONE;
}

/* ---------------------------------------------------------------- waits */

/*
 * sim_sleep_until blocks the calling thread until the monotonic time
 * wake_at_ms or until the server stops.
 */
static void
sim_sleep_until(int64_t wake_at_ms)
{
	struct timespec ts;

	ts.tv_sec = wake_at_ms / 1000;
	ts.tv_nsec = (wake_at_ms % 1000) * 1000000;
	pthread_mutex_lock(&sim_wait_mutex);
	while (!sim_stopping && sim_mono_ms() < wake_at_ms)
		if (pthread_cond_timedwait(&sim_wait_cond, &sim_wait_mutex, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&sim_wait_mutex);
}

/*
 * sim_timer_add arranges for the suspended connection conn to be resumed
 * at wake_at_ms (pool mode).  Resumes it at once if the server is stopping.
 */
static void
sim_timer_add(struct MHD_Connection *conn, int64_t wake_at_ms)
{
	SimTimer   *t;
	SimTimer  **p;

	pthread_mutex_lock(&sim_wait_mutex);
	if (sim_stopping)
	{
		pthread_mutex_unlock(&sim_wait_mutex);
		MHD_resume_connection(conn);
		return;
	}
	t = calloc(1, sizeof(SimTimer));
	if (t == NULL)
		abort();
	t->conn = conn;
	t->wake_at_ms = wake_at_ms;
	for (p = &sim_timers; *p && (*p)->wake_at_ms <= wake_at_ms; p = &(*p)->next)
		;
	t->next = *p;
	*p = t;
	pthread_cond_broadcast(&sim_wait_cond);
	pthread_mutex_unlock(&sim_wait_mutex);
}

/*
 * sim_timer_main resumes suspended connections when their time comes, and
 * all of them when the server stops.
 */
static void *
sim_timer_main(void *arg)
{
	(void) arg;
	pthread_mutex_lock(&sim_wait_mutex);
	for (;;)
	{
		int64_t		now = sim_mono_ms();

		while (sim_timers && (sim_stopping || sim_timers->wake_at_ms <= now))
		{
			SimTimer   *t = sim_timers;

			sim_timers = t->next;
			MHD_resume_connection(t->conn);
			free(t);
		}
		if (sim_stopping)
			break;
		if (sim_timers)
		{
			struct timespec ts;

			ts.tv_sec = sim_timers->wake_at_ms / 1000;
			ts.tv_nsec = (sim_timers->wake_at_ms % 1000) * 1000000;
			pthread_cond_timedwait(&sim_wait_cond, &sim_wait_mutex, &ts);
		}
		else
			pthread_cond_wait(&sim_wait_cond, &sim_wait_mutex);
	}
	pthread_mutex_unlock(&sim_wait_mutex);
	return NULL;
}

/* ------------------------------------------------------- the MHD glue */

/*
 * sim_uri_cb runs when a request line arrives and creates the SimRequest
 * that follows the request to its end; uri is the target as sent.
 */
static void *
sim_uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	SimRequest *req = calloc(1, sizeof(SimRequest));

	(void) cls;
	if (req == NULL)
		abort();
	req->conn = conn;
	req->raw_uri = strdup(uri ? uri : "/");
	req->items = -1;
	req->route_index = -1;
	req->arrival_wall_ms = sim_wall_ms();
	req->arrival_mono_ms = sim_mono_ms();
	return req;
}

/* sim_completed_cb frees the SimRequest when MHD is done with it. */
static void
sim_completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
				 enum MHD_RequestTerminationCode toe)
{
	SimRequest *req = *con_cls;

	(void) cls;
	(void) conn;
	(void) toe;
	if (req == NULL)
		return;
	free(req->raw_uri);
	free(req->path);
	free(req->query);
	free(req->body);
	free(req->reply);
	free(req->fault_body);
	free(req->fault_ctype);
	free(req->retry_after);
	free(req->fault_retry_after);
	free(req->vstate);
	for (int i = 0; i < req->nseg; i++)
		free(req->seg[i]);
	free(req);
	*con_cls = NULL;
}

/*
 * sim_respond queues req's answer; returns what the access handler must
 * return (MHD_NO closes the connection).  It neither counts nor logs.
 */
static enum MHD_Result
sim_respond(SimRequest *req)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (req->status == 0)
		return MHD_NO;
	if (req->reply == NULL)
	{
		req->reply = strdup("");
		req->reply_len = 0;
	}
	resp = MHD_create_response_from_buffer(req->reply_len, req->reply,
										   MHD_RESPMEM_MUST_FREE);
	if (resp == NULL)
		return MHD_NO;
	req->reply = NULL;
	if (req->content_type && req->content_type[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
	if (req->retry_after)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, req->retry_after);
	if (req->location)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, req->location);
	ret = MHD_queue_response(req->conn, req->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/*
 * sim_finish logs a finished vendor request and queues its answer; returns
 * what the access handler must return (MHD_NO closes the connection).
 */
static enum MHD_Result
sim_finish(SimRequest *req)
{
	if (!sim_is_control(req))
	{
		sim_lock();
		if (req->dispatched)
			sim_inflight_leave(req);
		if (req->record_items && req->route)
			sim_record_items(req->route_index, req->items);
		sim_log_add(req, sim_mono_ms() - req->arrival_mono_ms);
		sim_unlock();
	}
	return sim_respond(req);
}

/* sim_body_append adds a chunk of the request body, refusing past the cap. */
static void
sim_body_append(SimRequest *req, const char *data, size_t len)
{
	if (req->too_big)
		return;
	if (req->body_len + len > SIM_MAX_BODY)
	{
		req->too_big = true;
		return;
	}
	if (req->body_len + len + 1 > req->body_cap)
	{
		size_t		cap = req->body_cap ? req->body_cap : 1024;

		while (cap < req->body_len + len + 1)
			cap *= 2;
		req->body = realloc(req->body, cap);
		if (req->body == NULL)
			abort();
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, len);
	req->body_len += len;
	req->body[req->body_len] = '\0';
}

/*
 * sim_access is libmicrohttpd's access handler: it collects the body, then
 * runs the request, suspending or sleeping through the waits it asks for.
 * cls is SIM_CONTROL_ONLY on the control-only daemon, which refuses vendor
 * paths with 404 before reading the body, without counting or logging them.
 */
static enum MHD_Result
sim_access(void *cls, struct MHD_Connection *conn, const char *url,
		   const char *method, const char *version, const char *upload_data,
		   size_t *upload_data_size, void **con_cls)
{
	SimRequest *req = *con_cls;

	(void) version;
	if (req == NULL)
	{
		req = sim_uri_cb(NULL, url, conn);
		*con_cls = req;
	}
	if (!req->started)
	{
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
													 MHD_HTTP_HEADER_CONTENT_LENGTH);

		req->started = true;
		req->conn = conn;
		req->method = method;
		if (cls == SIM_CONTROL_ONLY && !sim_is_control_path(req->raw_uri))
		{
			sim_reply_error(req, 404,
							"this port serves the control interface only");
			return sim_respond(req);
		}
		if (cl && strtoull(cl, NULL, 10) > SIM_MAX_BODY)
		{
			req->too_big = true;
			sim_route_request(req);
			sim_reply_error(req, 413, "request body too large");
			return sim_finish(req);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		sim_body_append(req, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->too_big)
	{
		sim_route_request(req);
		sim_reply_error(req, 413, "request body too large");
		return sim_finish(req);
	}
	if (!req->dispatched)
	{
		req->dispatched = true;
		sim_begin(req);
	}
	for (;;)
	{
		if (sim_step(req) == SIM_DONE)
			break;
		if (sim_stopping)
			continue;
		if (sim_pool_mode)
		{
			MHD_suspend_connection(conn);
			sim_timer_add(conn, req->wake_at_ms);
			return MHD_YES;
		}
		sim_sleep_until(req->wake_at_ms);
	}
	return sim_finish(req);
}

/* ----------------------------------------------------------------- main */

/* sim_usage prints the command line summary. */
static void
sim_usage(FILE *out)
{
	fprintf(out, "usage: ccpurge-sim [--port N] [--port-file FILE] [--threads N]"
			" [--tls-cert FILE --tls-key FILE] [--control-port-file FILE]");
	for (int v = 0; v < sim_nvendors; v++)
		for (int i = 0; i < sim_vendors[v]->ncreds; i++)
			fprintf(out, " [--%s VALUE]", sim_vendors[v]->creds[i].flag);
	fprintf(out, "\n");
}

/*
 * sim_listen opens a listening socket on 127.0.0.1:port with address reuse
 * and returns it, storing the port actually bound; exits on failure.
 */
static int
sim_listen(int port, int *bound)
{
	struct sockaddr_in addr;
	socklen_t	alen = sizeof(addr);
	int			one = 1;
	int			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
	{
		perror("ccpurge-sim: socket");
		exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t) port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *) &addr, sizeof(addr)) < 0)
	{
		fprintf(stderr, "ccpurge-sim: cannot bind 127.0.0.1:%d: %s\n",
				port, strerror(errno));
		exit(1);
	}
	if (listen(fd, 1024) < 0)
	{
		perror("ccpurge-sim: listen");
		exit(1);
	}
	getsockname(fd, (struct sockaddr *) &addr, &alen);
	*bound = ntohs(addr.sin_port);
	return fd;
}

/*
 * sim_write_port_file writes the port to path through a temporary file and
 * a rename, so readers never see a partial file.
 */
static void
sim_write_port_file(const char *path, int port)
{
	size_t		len = strlen(path) + 32;
	char	   *tmp = malloc(len);
	FILE	   *f;

	if (tmp == NULL)
		abort();
	snprintf(tmp, len, "%s.tmp.%d", path, (int) getpid());
	f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 ||
		rename(tmp, path) != 0)
	{
		fprintf(stderr, "ccpurge-sim: cannot write port file \"%s\": %s\n",
				path, strerror(errno));
		exit(1);
	}
	free(tmp);
}

/*
 * sim_read_pem returns the whole of the PEM file path, malloc'd and
 * NUL-terminated, as libmicrohttpd wants certificates and keys; exits on
 * failure.  what names the file in the error ("certificate", "key").
 */
static char *
sim_read_pem(const char *path, const char *what)
{
	FILE	   *f = fopen(path, "r");
	char	   *buf = NULL;
	size_t		len = 0;
	size_t		cap = 0;

	if (f == NULL)
	{
		fprintf(stderr, "ccpurge-sim: cannot open TLS %s \"%s\": %s\n",
				what, path, strerror(errno));
		exit(1);
	}
	for (;;)
	{
		size_t		n;

		if (cap - len < 4096)
		{
			cap = cap ? cap * 2 : 8192;
			if (cap > 1024 * 1024)
			{
				fprintf(stderr, "ccpurge-sim: TLS %s \"%s\" is too large\n",
						what, path);
				exit(1);
			}
			buf = realloc(buf, cap);
			if (buf == NULL)
				abort();
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f) || len == 0)
	{
		fprintf(stderr, "ccpurge-sim: cannot read TLS %s \"%s\"%s\n",
				what, path, len == 0 ? ": the file is empty" : "");
		exit(1);
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/*
 * sim_start_daemon starts a libmicrohttpd daemon on the listening socket
 * fd with the simulator's handlers; cls is the access handler's closure
 * (NULL or SIM_CONTROL_ONLY), threads the pool size (0: a thread per
 * connection), and extra an option array (at least {MHD_OPTION_END}) for
 * TLS.  Returns NULL on failure.
 */
static struct MHD_Daemon *
sim_start_daemon(unsigned int flags, int fd, void *cls, int threads,
				 struct MHD_OptionItem *extra)
{
	/*
	 * Without a pool the option list ends before THREAD_POOL_SIZE: the
	 * conditional MHD_OPTION_END makes MHD stop reading there.
	 */
	return MHD_start_daemon(flags, 0, NULL, NULL, sim_access, cls,
							MHD_OPTION_LISTEN_SOCKET, fd,
							MHD_OPTION_URI_LOG_CALLBACK, sim_uri_cb, NULL,
							MHD_OPTION_NOTIFY_COMPLETED, sim_completed_cb, NULL,
							MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 120,
							MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 256 * 1024,
							MHD_OPTION_ARRAY, extra,
							threads > 0 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
							(unsigned int) threads,
							MHD_OPTION_END);
}

/* sim_parse_cli_int parses a non-negative integer option or exits. */
static int
sim_parse_cli_int(const char *name, const char *value, int max)
{
	int			v;

	if (!sim_parse_int(value, 0, max, &v))
	{
		fprintf(stderr, "ccpurge-sim: invalid value for --%s: \"%s\"\n", name, value);
		exit(2);
	}
	return v;
}

/*
 * main parses the command line, starts the server (and the control-only
 * server if asked), writes the port files and serves until SIGTERM or
 * SIGINT.
 */
int
main(int argc, char **argv)
{
	int			port = 0;
	int			threads = 0;
	const char *port_file = NULL;
	const char *control_port_file = NULL;
	const char *tls_cert_file = NULL;
	const char *tls_key_file = NULL;
	char	   *tls_cert = NULL;
	char	   *tls_key = NULL;
	struct MHD_OptionItem tls_opts[3];
	struct MHD_OptionItem no_opts[1];
	int			nopts = 7;
	struct option *opts;
	int			k = 0;
	int			fd;
	int			bound;
	int			control_bound = 0;
	unsigned int flags;
	struct MHD_Daemon *daemon;
	struct MHD_Daemon *control_daemon = NULL;
	sigset_t	sigs;
	int			sig;
	pthread_condattr_t cattr;
	pthread_t	timer;

	for (int v = 0; v < sim_nvendors; v++)
		nopts += sim_vendors[v]->ncreds;
	opts = calloc(nopts + 1, sizeof(struct option));
	if (opts == NULL)
		abort();
	opts[k++] = (struct option) {"port", required_argument, NULL, 1000};
	opts[k++] = (struct option) {"port-file", required_argument, NULL, 1001};
	opts[k++] = (struct option) {"threads", required_argument, NULL, 1002};
	opts[k++] = (struct option) {"help", no_argument, NULL, 1003};
	opts[k++] = (struct option) {"tls-cert", required_argument, NULL, 1004};
	opts[k++] = (struct option) {"tls-key", required_argument, NULL, 1005};
	opts[k++] = (struct option) {"control-port-file", required_argument, NULL, 1006};
	for (int v = 0; v < sim_nvendors; v++)
		for (int i = 0; i < sim_vendors[v]->ncreds; i++)
			opts[k++] = (struct option) {sim_vendors[v]->creds[i].flag,
				required_argument, NULL, 2000 + v * 100 + i};

	for (;;)
	{
		int			c = getopt_long(argc, argv, "", opts, NULL);

		if (c == -1)
			break;
		switch (c)
		{
			case 1000:
				port = sim_parse_cli_int("port", optarg, 65535);
				break;
			case 1001:
				port_file = optarg;
				break;
			case 1002:
				threads = sim_parse_cli_int("threads", optarg, 1024);
				break;
			case 1003:
				sim_usage(stdout);
				return 0;
			case 1004:
				tls_cert_file = optarg;
				break;
			case 1005:
				tls_key_file = optarg;
				break;
			case 1006:
				control_port_file = optarg;
				break;
			default:
				if (c >= 2000)
				{
					int			v = (c - 2000) / 100;
					int			i = (c - 2000) % 100;

					*sim_vendors[v]->creds[i].value = optarg;
					break;
				}
				sim_usage(stderr);
				return 2;
		}
	}
	if (optind < argc)
	{
		sim_usage(stderr);
		return 2;
	}
	if ((tls_cert_file == NULL) != (tls_key_file == NULL))
	{
		fprintf(stderr, "ccpurge-sim: --tls-cert and --tls-key go together\n");
		return 2;
	}

	/* the TLS options, or an empty list */
	no_opts[0] = (struct MHD_OptionItem) {MHD_OPTION_END, 0, NULL};
	if (tls_cert_file)
	{
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		{
			fprintf(stderr, "ccpurge-sim: this libmicrohttpd has no TLS support\n");
			return 1;
		}
		tls_cert = sim_read_pem(tls_cert_file, "certificate");
		tls_key = sim_read_pem(tls_key_file, "key");
		tls_opts[0] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_CERT, 0, tls_cert};
		tls_opts[1] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_KEY, 0, tls_key};
		tls_opts[2] = (struct MHD_OptionItem) {MHD_OPTION_END, 0, NULL};
	}

	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&sim_wait_cond, &cattr);
	sim_state_init();
	signal(SIGPIPE, SIG_IGN);

	/* block the stop signals in every thread; main waits for them below */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	fd = sim_listen(port, &bound);
	sim_pool_mode = threads > 0;
	if (sim_pool_mode)
	{
		flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
		if (pthread_create(&timer, NULL, sim_timer_main, NULL) != 0)
		{
			fprintf(stderr, "ccpurge-sim: cannot start the timer thread\n");
			return 1;
		}
	}
	else
		flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD;
	if (tls_cert)
		flags |= MHD_USE_TLS;

	daemon = sim_start_daemon(flags, fd, NULL, threads,
							  tls_cert ? tls_opts : no_opts);
	if (daemon == NULL)
	{
		fprintf(stderr, "ccpurge-sim: cannot start the %s server%s\n",
				tls_cert ? "HTTPS" : "HTTP",
				tls_cert ? " (is the key the certificate's, both in PEM?)" : "");
		return 1;
	}

	/* control calls never wait, so a thread per connection is enough */
	if (control_port_file)
	{
		int			cfd = sim_listen(0, &control_bound);

		control_daemon = sim_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
										  MHD_USE_POLL_INTERNAL_THREAD,
										  cfd, SIM_CONTROL_ONLY, 0, no_opts);
		if (control_daemon == NULL)
		{
			fprintf(stderr, "ccpurge-sim: cannot start the control server\n");
			return 1;
		}
		sim_write_port_file(control_port_file, control_bound);
	}
	if (port_file)
		sim_write_port_file(port_file, bound);
	fprintf(stderr, "ccpurge-sim: listening on 127.0.0.1:%d (%s, %s)\n", bound,
			tls_cert ? "https" : "http",
			sim_pool_mode ? "thread pool" : "thread per connection");
	if (control_daemon)
		fprintf(stderr, "ccpurge-sim: control interface on http://127.0.0.1:%d\n",
				control_bound);

	do
	{
		if (sigwait(&sigs, &sig) != 0)
			sig = 0;
	} while (sig != SIGTERM && sig != SIGINT);

	pthread_mutex_lock(&sim_wait_mutex);
	sim_stopping = true;
	pthread_cond_broadcast(&sim_wait_cond);
	pthread_mutex_unlock(&sim_wait_mutex);
	if (sim_pool_mode)
		pthread_join(timer, NULL);
	if (control_daemon)
		MHD_stop_daemon(control_daemon);
	MHD_stop_daemon(daemon);
	free(tls_cert);
	free(tls_key);
	free(opts);
	return 0;
}
