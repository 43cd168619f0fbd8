/*
 * The lab benchmark's ceiling: plain libusb to the sim's raw bulk device
 * (`tsmuxd sim --ffs DIR --raw`, native/testing/raw_bulk.h has the protocol),
 * with no daemon and no mux in between. Same gadget, same FunctionFS
 * transport in the sim, same bus as the daemons' runs.
 *
 *   raw-libusb [--bytes N] [--cases up,down,rtt] [--rtt-count N]
 *              [--transfer BYTES] [--in-flight N] [--no-zlp]
 *
 * up:   SINK N, then N bytes OUT as --transfer sized transfers, --in-flight
 *       of them queued, each with LIBUSB_TRANSFER_ADD_ZERO_PACKET (a mux host
 *       ends every transfer that fills whole packets with a ZLP) unless
 *       --no-zlp; the clock stops at the sim's 16-byte answer.
 * down: SOURCE N, --in-flight IN transfers of --transfer bytes kept pending.
 * bad-command: a 17-byte command, which the sim must refuse (and live).
 * rtt:  ECHO, 64-byte OUT transfers, each answered before the next, with
 *       the IN transfer submitted first (a daemon keeps its IN reads queued).
 * Prints one JSON object per case on stdout, shaped like `tsmuxd bench
 * --json`; the CPU is this process's own (getrusage), as it is the whole
 * host side here.
 */
#include <libusb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define APPLE_VID 0x05ac
#define IPHONE_PID 0x12a8
#define MAX_IN_FLIGHT 16
#define TIMEOUT_MS 30000
#define RAW_COMMAND_SIZE 16

enum raw_mode { RAW_SINK = 1, RAW_SOURCE = 2, RAW_ECHO = 3 };

static libusb_device_handle *handle;
static unsigned char ep_out, ep_in;
static int max_packet = 512;
static int mux_interface = -1;

static void die(const char *what, int rc)
{
	fprintf(stderr, "raw-libusb: %s: %s\n", what, rc ? libusb_error_name(rc) : "failed");
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The mux interface (ff/fe/02 with a bulk OUT and a bulk IN) of one
 * configuration; returns its number or -1, and fills the endpoints. */
static int find_mux(const struct libusb_config_descriptor *c, unsigned char *out, unsigned char *in, int *mps)
{
	for (int i = 0; i < c->bNumInterfaces; i++) {
		if (c->interface[i].num_altsetting < 1)
			continue;
		const struct libusb_interface_descriptor *d = &c->interface[i].altsetting[0];
		if (d->bInterfaceClass != 0xff || d->bInterfaceSubClass != 0xfe || d->bInterfaceProtocol != 2)
			continue;
		*out = *in = 0;
		for (int e = 0; e < d->bNumEndpoints; e++) {
			const struct libusb_endpoint_descriptor *ep = &d->endpoint[e];
			if ((ep->bmAttributes & 3) != LIBUSB_TRANSFER_TYPE_BULK)
				continue;
			if (ep->bEndpointAddress & 0x80)
				*in = ep->bEndpointAddress;
			else
				*out = ep->bEndpointAddress;
			*mps = ep->wMaxPacketSize & 0x7ff;
		}
		if (*out && *in)
			return d->bInterfaceNumber;
	}
	return -1;
}

/* Opens the phone and claims its mux interface in the highest configuration
 * that has one, setting that configuration first when the device is in
 * another (Debian's udev rule leaves a phone unconfigured), as usbmuxd does. */
static void open_phone(void)
{
	libusb_device **list;
	ssize_t n = libusb_get_device_list(NULL, &list);
	if (n < 0)
		die("libusb_get_device_list", (int)n);
	libusb_device *dev = NULL;
	for (ssize_t i = 0; i < n && !dev; i++) {
		struct libusb_device_descriptor dd;
		if (libusb_get_device_descriptor(list[i], &dd) == 0 && dd.idVendor == APPLE_VID && dd.idProduct == IPHONE_PID)
			dev = libusb_ref_device(list[i]);
	}
	libusb_free_device_list(list, 1);
	if (!dev) {
		fprintf(stderr, "raw-libusb: no %04x:%04x on the bus\n", APPLE_VID, IPHONE_PID);
		exit(1);
	}
	struct libusb_device_descriptor dd;
	libusb_get_device_descriptor(dev, &dd);
	int best_value = -1, best_if = -1;
	for (int i = 0; i < dd.bNumConfigurations; i++) {
		struct libusb_config_descriptor *c;
		if (libusb_get_config_descriptor(dev, (uint8_t)i, &c) != 0)
			continue;
		unsigned char o, in;
		int mps = 512;
		int ifnum = find_mux(c, &o, &in, &mps);
		if (ifnum >= 0 && c->bConfigurationValue > best_value) {
			best_value = c->bConfigurationValue;
			best_if = ifnum;
			ep_out = o;
			ep_in = in;
			max_packet = mps;
		}
		libusb_free_config_descriptor(c);
	}
	if (best_if < 0) {
		fprintf(stderr, "raw-libusb: no configuration has the mux interface ff/fe/02\n");
		exit(1);
	}
	int rc = libusb_open(dev, &handle);
	libusb_unref_device(dev);
	if (rc)
		die("libusb_open", rc);
	int current = 0;
	rc = libusb_get_configuration(handle, &current);
	if (rc)
		die("libusb_get_configuration", rc);
	if (current != best_value) {
		struct libusb_config_descriptor *c;
		if (current > 0 && libusb_get_active_config_descriptor(libusb_get_device(handle), &c) == 0) {
			for (int i = 0; i < c->bNumInterfaces; i++)
				libusb_detach_kernel_driver(handle, c->interface[i].altsetting[0].bInterfaceNumber);
			libusb_free_config_descriptor(c);
		}
		rc = libusb_set_configuration(handle, best_value);
		if (rc)
			die("libusb_set_configuration", rc);
		fprintf(stderr, "raw-libusb: configuration %d -> %d\n", current, best_value);
	}
	libusb_set_auto_detach_kernel_driver(handle, 1);
	mux_interface = best_if;
	rc = libusb_claim_interface(handle, best_if);
	if (rc)
		die("libusb_claim_interface", rc);
	fprintf(stderr, "raw-libusb: configuration %d, interface %d, endpoints %02x/%02x, wMaxPacketSize %d\n",
		best_value, best_if, ep_out, ep_in, max_packet);
}

static void command(enum raw_mode mode, uint64_t n)
{
	unsigned char c[RAW_COMMAND_SIZE] = { 'T', 'R', 'A', 'W', 1, (unsigned char)mode, 0, 0 };
	for (int i = 0; i < 8; i++)
		c[15 - i] = (unsigned char)(n >> (8 * i));
	int moved = 0;
	int rc = libusb_bulk_transfer(handle, ep_out, c, sizeof c, &moved, TIMEOUT_MS);
	if (rc || moved != (int)sizeof c)
		die("sending a command", rc);
}

/* --- streaming: `in_flight` transfers of `size` bytes until `total` moved --- */

struct stream {
	uint64_t requested, moved, total;
	int pending, failed, zlp;
};

static void stream_done(struct libusb_transfer *t)
{
	struct stream *s = t->user_data;
	s->pending--;
	if (t->status != LIBUSB_TRANSFER_COMPLETED) {
		fprintf(stderr, "raw-libusb: transfer status %s\n", libusb_error_name(t->status));
		s->failed = 1;
		return;
	}
	s->moved += (uint64_t)t->actual_length;
	if (s->failed || s->requested >= s->total)
		return;
	uint64_t left = s->total - s->requested;
	t->length = left < (uint64_t)t->length ? (int)left : t->length;
	s->requested += (uint64_t)t->length;
	if (libusb_submit_transfer(t) == 0)
		s->pending++;
	else
		s->failed = 1;
}

static void stream(unsigned char ep, uint64_t total, int size, int in_flight, int zlp)
{
	struct libusb_transfer *ts[MAX_IN_FLIGHT] = { 0 };
	unsigned char *bufs[MAX_IN_FLIGHT] = { 0 };
	struct stream s = { .total = total, .zlp = zlp };
	for (int i = 0; i < in_flight && s.requested < total; i++) {
		bufs[i] = malloc((size_t)size);
		ts[i] = libusb_alloc_transfer(0);
		if (!bufs[i] || !ts[i])
			die("out of memory", 0);
		memset(bufs[i], 0x5a, (size_t)size);
		uint64_t left = total - s.requested;
		int len = left < (uint64_t)size ? (int)left : size;
		libusb_fill_bulk_transfer(ts[i], handle, ep, bufs[i], len, stream_done, &s, TIMEOUT_MS);
		if (zlp && !(ep & 0x80))
			ts[i]->flags |= LIBUSB_TRANSFER_ADD_ZERO_PACKET;
		s.requested += (uint64_t)len;
		if (libusb_submit_transfer(ts[i]) != 0)
			die("libusb_submit_transfer", 0);
		s.pending++;
	}
	while (s.pending > 0)
		libusb_handle_events(NULL);
	for (int i = 0; i < in_flight; i++) {
		libusb_free_transfer(ts[i]);
		free(bufs[i]);
	}
	if (s.failed || s.moved != total) {
		fprintf(stderr, "raw-libusb: moved %llu of %llu bytes\n", (unsigned long long)s.moved, (unsigned long long)total);
		exit(1);
	}
}

static void print_throughput(const char *direction, uint64_t bytes, double seconds, double cpu, int size, int in_flight, int zlp)
{
	double gib = bytes / 1073741824.0;
	printf("{\"kind\":\"throughput\",\"direction\":\"%s\",\"connections\":1,\"devices\":1,\"bytes\":%llu,"
	       "\"seconds\":%.6f,\"mibPerSec\":%.3f,\"mbPerSec\":%.3f,\"daemonCpuSec\":%.4f,\"cpuSecPerGiB\":%.4f,"
	       "\"path\":\"raw-libusb\",\"transferBytes\":%d,\"inFlight\":%d,\"zlp\":%s}\n",
	       direction, (unsigned long long)bytes, seconds, bytes / seconds / 1048576.0, bytes / seconds / 1e6, cpu,
	       cpu / gib, size, in_flight, zlp ? "true" : "false");
	fflush(stdout);
}

static void measure_up(uint64_t bytes, int size, int in_flight, int zlp)
{
	double c0 = cpu_s(), t0 = now_s();
	command(RAW_SINK, bytes);
	stream(ep_out, bytes, size, in_flight, zlp);
	unsigned char answer[512];
	int got = 0;
	int rc = libusb_bulk_transfer(handle, ep_in, answer, sizeof answer, &got, TIMEOUT_MS);
	if (rc || got != RAW_COMMAND_SIZE || memcmp(answer, "TRAW", 4) != 0)
		die("reading the SINK answer", rc);
	uint64_t counted = 0;
	for (int i = 8; i < 16; i++)
		counted = (counted << 8) | answer[i];
	if (counted != bytes) {
		fprintf(stderr, "raw-libusb: the sim counted %llu of %llu bytes\n", (unsigned long long)counted, (unsigned long long)bytes);
		exit(1);
	}
	print_throughput("up", bytes, now_s() - t0, cpu_s() - c0, size, in_flight, zlp);
}

static void measure_down(uint64_t bytes, int size, int in_flight)
{
	double c0 = cpu_s(), t0 = now_s();
	command(RAW_SOURCE, bytes);
	stream(ep_in, bytes, size, in_flight, 0);
	double seconds = now_s() - t0, cpu = cpu_s() - c0;
	/* Our requests added up to exactly N, so they all filled; the ZLP the
	 * sim writes after a last piece on a packet boundary is still queued. */
	if (bytes % (uint64_t)max_packet == 0) {
		unsigned char zlp[512];
		int got = -1;
		int rc = libusb_bulk_transfer(handle, ep_in, zlp, sizeof zlp, &got, TIMEOUT_MS);
		if (rc || got != 0)
			die("reading SOURCE's closing ZLP", rc);
	}
	print_throughput("down", bytes, seconds, cpu, size, in_flight, 0);
}

struct echo_step {
	int pending, failed, got;
};

static void echo_done(struct libusb_transfer *t)
{
	struct echo_step *e = t->user_data;
	e->pending--;
	if (t->status != LIBUSB_TRANSFER_COMPLETED)
		e->failed = 1;
	else if (t->endpoint & 0x80)
		e->got = t->actual_length;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void measure_rtt(int count)
{
	enum { PAYLOAD = 64, WARMUP = 20 };
	int total = count + WARMUP;
	double *ms = calloc((size_t)count, sizeof *ms);
	unsigned char out[PAYLOAD], *in = malloc(65536);
	struct libusb_transfer *to = libusb_alloc_transfer(0), *ti = libusb_alloc_transfer(0);
	if (!ms || !in || !to || !ti)
		die("out of memory", 0);
	command(RAW_ECHO, (uint64_t)total * PAYLOAD);
	for (int i = 0; i < total; i++) {
		struct echo_step e = { 0 };
		memset(out, i & 0xff, sizeof out);
		libusb_fill_bulk_transfer(ti, handle, ep_in, in, 65536, echo_done, &e, TIMEOUT_MS);
		libusb_fill_bulk_transfer(to, handle, ep_out, out, PAYLOAD, echo_done, &e, TIMEOUT_MS);
		if (libusb_submit_transfer(ti) != 0)
			die("submitting the echo IN", 0);
		e.pending++;
		double t0 = now_s();
		if (libusb_submit_transfer(to) != 0)
			die("submitting the echo OUT", 0);
		e.pending++;
		while (e.pending > 0)
			libusb_handle_events(NULL);
		double t1 = now_s();
		if (e.failed || e.got != PAYLOAD || in[0] != (i & 0xff) || in[PAYLOAD - 1] != (i & 0xff))
			die("an echo came back wrong", 0);
		if (i >= WARMUP)
			ms[i - WARMUP] = (t1 - t0) * 1e3;
	}
	qsort(ms, (size_t)count, sizeof *ms, compare_double);
	int p99 = (int)(count * 0.99);
	if (p99 >= count)
		p99 = count - 1;
	printf("{\"kind\":\"rtt\",\"payloadBytes\":%d,\"count\":%d,\"p50Ms\":%.4f,\"p99Ms\":%.4f,\"minMs\":%.4f,\"maxMs\":%.4f,"
	       "\"path\":\"raw-libusb\"}\n", PAYLOAD, count, ms[count / 2], ms[p99], ms[0], ms[count - 1]);
	fflush(stdout);
	libusb_free_transfer(to);
	libusb_free_transfer(ti);
	free(in);
	free(ms);
}

/* A 17-byte "command": the sim must log it, close its transport and stay
 * up (the harness checks); it answers nothing until the next ENABLE. */
static void send_bad_command(void)
{
	unsigned char c[RAW_COMMAND_SIZE + 1] = { 'T', 'R', 'A', 'W', 1, RAW_SINK };
	int moved = 0;
	int rc = libusb_bulk_transfer(handle, ep_out, c, sizeof c, &moved, TIMEOUT_MS);
	if (rc || moved != (int)sizeof c)
		die("sending the bad command", rc);
	printf("{\"kind\":\"check\",\"name\":\"bad-command-sent\",\"bytes\":%d}\n", (int)sizeof c);
	fflush(stdout);
}

static uint64_t number(const char *flag, const char *v, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long n = v ? strtoull(v, &end, 10) : 0;
	if (!v || *end || n < min || n > max) {
		fprintf(stderr, "raw-libusb: %s wants a whole number in %llu..%llu\n", flag, (unsigned long long)min,
			(unsigned long long)max);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	uint64_t bytes = 64ull << 20;
	int rtt_count = 1000, size = 65536, in_flight = 4, zlp = 1;
	const char *cases = "up,down,rtt";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--bytes")) bytes = number(a, v, 1, 1ull << 40), i++;
		else if (!strcmp(a, "--rtt-count")) rtt_count = (int)number(a, v, 1, 1000000), i++;
		else if (!strcmp(a, "--transfer")) size = (int)number(a, v, 512, 1 << 20), i++;
		else if (!strcmp(a, "--in-flight")) in_flight = (int)number(a, v, 1, MAX_IN_FLIGHT), i++;
		else if (!strcmp(a, "--cases") && v) cases = v, i++;
		else if (!strcmp(a, "--no-zlp")) zlp = 0;
		else {
			fprintf(stderr, "usage: raw-libusb [--bytes N] [--cases up,down,rtt] [--rtt-count N] "
					"[--transfer BYTES] [--in-flight N] [--no-zlp]\n");
			return 2;
		}
	}
	int rc = libusb_init(NULL);
	if (rc)
		die("libusb_init", rc);
	open_phone();
	char list[64];
	snprintf(list, sizeof list, ",%s,", cases);
	if (strstr(list, ",up,"))
		measure_up(bytes, size, in_flight, zlp);
	if (strstr(list, ",down,"))
		measure_down(bytes, size, in_flight);
	if (strstr(list, ",rtt,"))
		measure_rtt(rtt_count);
	if (strstr(list, ",bad-command,"))
		send_bad_command();
	libusb_release_interface(handle, mux_interface);
	libusb_close(handle);
	libusb_exit(NULL);
	return 0;
}
