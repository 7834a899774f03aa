/*
 * fotadev.c - fotadev-c, the C device library as a Linux command: one
 * update session with a fotagate gateway, like the Go fotadev.
 *
 *   fotadev-c --gateway 127.0.0.1:7683 --key device.json --flash dev.flash --state dev.state
 *
 * The chunk limit is compiled in (FOTA_MAX_PAYLOAD): the Makefile builds
 * fotadev-c-64 ... fotadev-c-4096. Exit status: 0 installed, up to date
 * or told to retry; 1 failed or refused; 2 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fota.h"
#include "fota_posix.h"

#define EXIT_USAGE 2

struct options {
	const char *gateway, *key, *flash, *state, *expect_gateway;
	unsigned long slot_size, ack_every, max_payload, timeout;
	int timing, erase_ahead, reboot, json, verbose;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: fotadev-c --key device.json --flash dev.flash --state dev.state [flags]\n\n"
	        "Runs the C device library through one update session with a fotagate gateway.\n"
	        "Exit status: 0 installed, up to date or retry; 1 failed or refused; 2 usage.\n\n"
	        "Flags:\n"
	        "  --gateway HOST:PORT   gateway address (default 127.0.0.1:7683)\n"
	        "  --key FILE            device key, JSON from \"fotagate keys\" (mode 0600); required\n"
	        "  --flash FILE          update slot, created erased if missing; required\n"
	        "  --state FILE          device state (devicelib's format), created if missing; required\n"
	        "  --slot-size BYTES     slot size, a multiple of %d (default 1048576)\n"
	        "  --ack-every BYTES     bytes between durable points, a multiple of %d (default one sector)\n"
	        "  --max-payload BYTES   chunk limit to announce, 64..%d (default and maximum: this build's)\n"
	        "  --gateway-id ID       talk to this gateway only\n"
	        "  --flash-timing        sleep as long as ESP8266 flash takes (45 ms an erase, 0.8 ms a page;\n"
	        "                        a state save an erase and a page)\n"
	        "  --erase-ahead         erase the image's next sectors while no data waits (fota_erase_ahead)\n"
	        "  --timeout SECONDS     give up when the gateway is silent this long (default 30)\n"
	        "  --no-reboot           leave an installed image pending instead of booting and confirming it\n"
	        "  --json                print the result as one JSON object on stdout, with the\n"
	        "                        seconds from the dial to the first and the last image\n"
	        "                        byte stored (first_byte_s, last_byte_s)\n"
	        "  --verbose             report progress on stderr\n",
	        FOTA_SECTOR_SIZE, FOTA_SECTOR_SIZE, FOTA_MAX_PAYLOAD);
}

static int parse_num(const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && *s != '\0' && *end == '\0' && *s != '-' ? 0 : -1;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	int i;

	memset(o, 0, sizeof *o);
	o->gateway = "127.0.0.1:7683";
	o->slot_size = 1u << 20;
	o->max_payload = FOTA_MAX_PAYLOAD;
	o->timeout = 30;
	o->reboot = 1;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **str = NULL;
		unsigned long *num = NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--gateway") == 0) {
			str = &o->gateway;
		} else if (strcmp(a, "--key") == 0) {
			str = &o->key;
		} else if (strcmp(a, "--flash") == 0) {
			str = &o->flash;
		} else if (strcmp(a, "--state") == 0) {
			str = &o->state;
		} else if (strcmp(a, "--gateway-id") == 0) {
			str = &o->expect_gateway;
		} else if (strcmp(a, "--slot-size") == 0) {
			num = &o->slot_size;
		} else if (strcmp(a, "--ack-every") == 0) {
			num = &o->ack_every;
		} else if (strcmp(a, "--max-payload") == 0) {
			num = &o->max_payload;
		} else if (strcmp(a, "--timeout") == 0) {
			num = &o->timeout;
		} else if (strcmp(a, "--flash-timing") == 0) {
			o->timing = 1;
			continue;
		} else if (strcmp(a, "--erase-ahead") == 0) {
			o->erase_ahead = 1;
			continue;
		} else if (strcmp(a, "--no-reboot") == 0) {
			o->reboot = 0;
			continue;
		} else if (strcmp(a, "--json") == 0) {
			o->json = 1;
			continue;
		} else if (strcmp(a, "--verbose") == 0) {
			o->verbose = 1;
			continue;
		} else {
			fprintf(stderr, "fotadev-c: unknown flag %s\nRun fotadev-c --help for the flags.\n", a);
			return -1;
		}
		if (v == NULL) {
			fprintf(stderr, "fotadev-c: %s needs a value\n", a);
			return -1;
		}
		if (str != NULL) {
			*str = v;
		} else if (parse_num(v, num) != 0) {
			fprintf(stderr, "fotadev-c: %s %s: not a number\n", a, v);
			return -1;
		}
		i++;
	}
	if (o->key == NULL || o->flash == NULL || o->state == NULL) {
		fprintf(stderr, "fotadev-c: missing %s%s%s\nRun fotadev-c --help for the flags.\n",
		        o->key ? "" : "--key ", o->flash ? "" : "--flash ", o->state ? "" : "--state");
		return -1;
	}
	if (o->slot_size == 0 || o->slot_size > 0xfffff000ul || o->timeout == 0) {
		fprintf(stderr, "fotadev-c: --slot-size and --timeout must be positive\n");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The key file: {"device_id": "...", "class": "...", "psk": "<64 hex>"} */
/* ------------------------------------------------------------------ */

struct key {
	char id[FOTA_ID_MAX + 1];
	char class_name[FOTA_ID_MAX + 1];
	uint8_t psk[FOTA_PSK_SIZE];
};

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
	return s;
}

/* A JSON string without escapes (IDs, classes and hex need none). */
static const char *json_string(const char *s, char *out, size_t max)
{
	size_t n = 0;

	if (*s != '"') return NULL;
	for (s++; *s != '"'; s++) {
		if (*s == '\0' || *s == '\\' || (unsigned char)*s < 0x20 || n + 1 >= max) return NULL;
		out[n++] = *s;
	}
	out[n] = '\0';
	return s + 1;
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	size_t i;

	if (strlen(s) != 2 * n) return -1;
	for (i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
		        c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (v < 0) return -1;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
	}
	return 0;
}

static int load_key(const char *path, struct key *k)
{
	char text[4096], name[32], value[80];
	const char *s = text;
	struct stat sb;
	int fd, have = 0;
	ssize_t n;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		fprintf(stderr, "fotadev-c: key file %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* Like ssh with a private key: the PSK lets anyone pose as the device. */
	if ((sb.st_mode & 077) != 0) {
		fprintf(stderr, "fotadev-c: key file %s has mode %04o, so others may read the device's key; run: chmod 600 %s\n",
		        path, (unsigned)(sb.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n < 0) {
		fprintf(stderr, "fotadev-c: key file %s: %s\n", path, strerror(errno));
		return -1;
	}
	text[n] = '\0';
	s = skip_ws(s);
	if (*s++ != '{') goto bad;
	for (;;) {
		s = json_string(skip_ws(s), name, sizeof name);
		if (s == NULL) goto bad;
		s = skip_ws(s);
		if (*s++ != ':') goto bad;
		s = json_string(skip_ws(s), value, sizeof value);
		if (s == NULL) goto bad;
		if (strcmp(name, "device_id") == 0 && strlen(value) < sizeof k->id) {
			strcpy(k->id, value);
			have |= 1;
		} else if (strcmp(name, "class") == 0 && strlen(value) < sizeof k->class_name) {
			strcpy(k->class_name, value);
			have |= 2;
		} else if (strcmp(name, "psk") == 0 && unhex(value, k->psk, sizeof k->psk) == 0) {
			have |= 4;
		} else {
			goto bad;
		}
		s = skip_ws(s);
		if (*s == '}') break;
		if (*s++ != ',') goto bad;
	}
	if (have != 7 || *skip_ws(s + 1) != '\0') goto bad;
	return 0;
bad:
	fprintf(stderr, "fotadev-c: key file %s: want {\"device_id\", \"class\", \"psk\" (64 hex digits)} and nothing else\n", path);
	return -1;
}

/* ------------------------------------------------------------------ */

static int dial(const char *hostport, unsigned long timeout)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints, *res, *ai;
	struct timeval tv;
	int fd = -1, rc;

	if (colon == NULL || (size_t)(colon - hostport) >= sizeof host) {
		fprintf(stderr, "fotadev-c: --gateway %s: want HOST:PORT\n", hostport);
		return -1;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "fotadev-c: resolving %s: %s\n", hostport, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "fotadev-c: connecting to the gateway %s: %s\n", hostport, strerror(errno));
		return -1;
	}
	/* A silent gateway ends the session: the read fails, the library
	 * hears the connection ended. */
	tv.tv_sec = (time_t)timeout;
	tv.tv_usec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

struct run {
	const struct options *o;
	uint32_t last_shown;
	/* Seconds from just before the dial to the first and to the last
	 * image byte stored, as the bench's Go device counts them (0: none):
	 * what --json reports, so a caller's figures leave out this process's
	 * start and exit and the read-back check of the slot. */
	struct timespec t0;
	double first_byte, last_byte;
};

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void on_event(void *arg, struct fota_ctx *ctx, enum fota_event ev)
{
	struct run *r = arg;
	struct fota_progress p;

	fota_progress(ctx, &p);
	if (p.received > p.start) {   /* any event: the Final's is not a progress */
		if (r->first_byte == 0) r->first_byte = since(&r->t0);
		if (p.received == p.size && r->last_byte == 0) r->last_byte = since(&r->t0);
	}
	if (!r->o->verbose) return;
	if (ev == FOTA_EV_OFFER) {
		const struct fota_manifest *m = fota_manifest(ctx);

		fprintf(stderr, "fotadev-c: offered image %lu, %lu bytes in chunks of %u\n",
		        (unsigned long)m->seq, (unsigned long)m->size, (unsigned)m->chunk);
	} else if (ev == FOTA_EV_PROGRESS && p.durable != r->last_shown) {
		r->last_shown = p.durable;
		fprintf(stderr, "fotadev-c: %lu of %lu bytes durable\n",
		        (unsigned long)p.durable, (unsigned long)p.size);
	}
}

static const char *outcome(enum fota_event ev, enum fota_err err)
{
	switch (ev) {
	case FOTA_EV_DONE: return "installed";
	case FOTA_EV_UP_TO_DATE: return "up_to_date";
	case FOTA_EV_RETRY: return "retry";
	default: break;
	}
	/* The device's own answers to an offer, as devicelib calls them. */
	switch (err) {
	case FOTA_ERR_ROLLBACK: case FOTA_ERR_WRONG_CLASS: case FOTA_ERR_TOO_LARGE:
	case FOTA_ERR_BAD_CHUNK: case FOTA_ERR_BAD_SIGNATURE: case FOTA_ERR_DECLINED:
		return "refused";
	default:
		return "failed";
	}
}

static void hex(FILE *f, const uint8_t *b, size_t n)
{
	while (n-- > 0) fprintf(f, "%02x", *b++);
}

int main(int argc, char **argv)
{
	struct options o;
	struct key k;
	struct fota_posix port;
	struct fota_config cfg;
	static struct fota_ctx ctx;   /* 4 KiB of frame buffer: static, as on a device */
	struct fota_state st;
	struct fota_progress prog;
	const struct fota_manifest *m;
	struct run r;
	enum fota_event ev;
	enum fota_err err, boot_err = FOTA_OK;
	int fd;

	if (parse_args(argc, argv, &o) != 0) {
		return EXIT_USAGE;
	}
	if (load_key(o.key, &k) != 0) {
		return 1;
	}
	if (fota_posix_open(&port, o.flash, (uint32_t)o.slot_size, o.state, k.class_name, o.timing) != 0) {
		fprintf(stderr, "fotadev-c: %s\n", port.err);
		return 1;
	}
	memset(&cfg, 0, sizeof cfg);
	cfg.device_id = k.id;
	cfg.device_class = k.class_name;
	cfg.gateway_id = o.expect_gateway;
	cfg.psk = k.psk;
	cfg.max_payload = (uint32_t)o.max_payload;
	cfg.slot_size = (uint32_t)o.slot_size;
	cfg.ack_every = (uint32_t)o.ack_every;
	fota_posix_callbacks(&port, &cfg);

	/* Power on: a pending image from an earlier run boots and confirms. */
	if (o.reboot && (boot_err = fota_confirm(&cfg)) == FOTA_ERR_ROLLBACK) {
		fprintf(stderr, "fotadev-c: warning: the pending image is not newer than the running one; dropped it\n");
	} else if (boot_err != FOTA_OK) {
		fprintf(stderr, "fotadev-c: booting the pending image: %s\n", port.err);
		return 1;
	}
	if (fota_init(&ctx, &cfg) != FOTA_OK) {
		fprintf(stderr, "fotadev-c: the key file's ID or class, or a flag, is outside the protocol's limits\n");
		return EXIT_USAGE;
	}
	memset(&r, 0, sizeof r);
	r.o = &o;
	clock_gettime(CLOCK_MONOTONIC, &r.t0);
	fd = dial(o.gateway, o.timeout);
	if (fd < 0) {
		return 1;
	}
	ev = fota_posix_session(&ctx, fd, &port, o.erase_ahead, on_event, &r);
	close(fd);
	err = fota_error(&ctx);
	if (ev == FOTA_EV_DONE && o.reboot) {
		/* Reboot into it; the new image checks itself and confirms. */
		if (fota_confirm(&cfg) != FOTA_OK) {
			ev = FOTA_EV_ERROR;
			err = FOTA_ERR_FLASH;
		}
	}
	fota_progress(&ctx, &prog);
	m = fota_manifest(&ctx);
	memset(&st, 0, sizeof st);
	if (err == FOTA_ERR_FLASH || err == FOTA_ERR_RANDOM) {
		fprintf(stderr, "fotadev-c: %s\n", port.err);
	}
	fota_posix_state_load(&port, &st);

	if (o.json) {
		printf("{\"device_id\":\"%s\",\"outcome\":\"%s\"", k.id, outcome(ev, err));
		if (m->size != 0) {
			printf(",\"seq\":%lu,\"size\":%lu,\"sha256\":\"", (unsigned long)m->seq, (unsigned long)m->size);
			hex(stdout, m->digest, sizeof m->digest);
			putchar('"');
		}
		printf(",\"resumed_from\":%lu,\"received\":%lu", (unsigned long)prog.start,
		       (unsigned long)(prog.received - prog.start));
		if (ev == FOTA_EV_RETRY) {
			printf(",\"retry_after_s\":%u", (unsigned)fota_retry_after(&ctx));
		}
		printf(",\"running\":%lu", (unsigned long)st.running.seq);
		if (o.erase_ahead) {
			printf(",\"erased_ahead\":%lu", port.erased_ahead);
		}
		if (st.pending.size != 0) {
			printf(",\"pending\":%lu", (unsigned long)st.pending.seq);
		}
		printf(",\"boot_counter\":%lu", (unsigned long)st.boot_counter);
		if (r.first_byte > 0) {
			printf(",\"first_byte_s\":%.6f", r.first_byte);
		}
		if (r.last_byte > 0) {
			printf(",\"last_byte_s\":%.6f", r.last_byte);
		}
		if (ev == FOTA_EV_ERROR) {
			printf(",\"reason\":\"%s\"", fota_err_name(err));
		}
		printf("}\n");
	} else if (ev == FOTA_EV_DONE) {
		printf("installed image %lu (%lu bytes, sha256 ", (unsigned long)m->seq, (unsigned long)m->size);
		hex(stdout, m->digest, sizeof m->digest);
		printf(")");
		if (prog.start > 0) printf(", resumed at byte %lu", (unsigned long)prog.start);
		printf("; received %lu bytes\n", (unsigned long)(prog.received - prog.start));
		if (st.pending.size != 0) {
			printf("running %lu; image %lu boots at the next run\n", (unsigned long)st.running.seq,
			       (unsigned long)st.pending.seq);
		} else {
			printf("now running %lu\n", (unsigned long)st.running.seq);
		}
	} else if (ev == FOTA_EV_UP_TO_DATE) {
		printf("up to date: running %lu\n", (unsigned long)st.running.seq);
	} else if (ev == FOTA_EV_RETRY) {
		printf("the gateway is still fetching the image; retry after %us\n", (unsigned)fota_retry_after(&ctx));
	}
	if (ev == FOTA_EV_ERROR) {
		fprintf(stderr, "fotadev-c: %s: %s (received %lu bytes from offset %lu)\n",
		        outcome(ev, err), fota_err_name(err), (unsigned long)(prog.received - prog.start),
		        (unsigned long)prog.start);
	}
	fota_posix_close(&port);
	fota_wipe(k.psk, sizeof k.psk);
	return ev == FOTA_EV_ERROR ? 1 : 0;
}
