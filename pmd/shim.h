/* midogw C shim: out-of-line wrappers for DPDK's static-inline fast-path functions and macros, so
 * Rust can call them through bindgen. Every function here is a one-line forward; keep it that way. */
#ifndef MIDOGW_SHIM_H
#define MIDOGW_SHIM_H

#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_debug.h>
#include <rte_dev.h>
#include <rte_bus.h>
#include <rte_log.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>

int midogw_errno(void);
const char *midogw_strerror(int err);
unsigned midogw_lcore_id(void);
uint64_t midogw_rdtsc(void);
uint64_t midogw_tsc_hz(void);

uint16_t midogw_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t midogw_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *midogw_pktmbuf_alloc(struct rte_mempool *mp);
int midogw_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void midogw_pktmbuf_free(struct rte_mbuf *m);
char *midogw_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *midogw_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *midogw_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int midogw_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t midogw_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t midogw_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t midogw_pktmbuf_data_room_size(struct rte_mempool *mp);

unsigned midogw_mempool_avail_count(const struct rte_mempool *mp);
unsigned midogw_mempool_in_use_count(const struct rte_mempool *mp);

unsigned midogw_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned midogw_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned midogw_ring_count(const struct rte_ring *r);

#endif
