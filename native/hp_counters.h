/* hp_counters.h — every drop reason and every event counter, declared once.
 *
 * Each list is an X-macro: the enum, the name table (what `vpclab stats` and the
 * Python wrapper print) and the per-port counter arrays are all generated from it,
 * so a reason added here is counted, named and shown everywhere at once.
 *
 * HP_DROP(ENUM_SUFFIX, "short-name", "what happened")
 */
#ifndef HP_COUNTERS_H
#define HP_COUNTERS_H

#define HP_DROP_REASONS(X)                                                                   \
    X(NONE,               "none",               "not dropped")                               \
    X(UNKNOWN_PORT,       "unknown_port",       "frame arrived on a port the engine does not have") \
    X(ETH_TRUNCATED,      "eth_truncated",      "frame shorter than its Ethernet (and VLAN) header") \
    X(VLAN_STACKED,       "vlan_stacked",       "more than one VLAN tag (QinQ is not supported)") \
    X(NOT_FOR_US,         "not_for_us",         "destination MAC is neither the port's nor broadcast") \
    X(ETHERTYPE,          "ethertype",          "neither IPv4 nor ARP (IPv6 is not supported)") \
    X(ARP_MALFORMED,      "arp_malformed",      "ARP packet too short or not Ethernet/IPv4") \
    X(ARP_NOT_OURS,       "arp_not_ours",       "ARP that is not a request for one of the port's addresses") \
    X(IP_TRUNCATED,       "ip_truncated",       "IPv4 header runs past the end of the frame") \
    X(IP_VERSION,         "ip_version",         "IP version field is not 4") \
    X(IP_IHL,             "ip_ihl",             "IPv4 header length below 20 bytes") \
    X(IP_LENGTH,          "ip_length",          "IPv4 total length shorter than its header or longer than the frame") \
    X(IP_CHECKSUM,        "ip_checksum",        "IPv4 header checksum is wrong") \
    X(IP_FRAGMENT,        "ip_fragment",        "IPv4 fragment (Hyperplane flows need the L4 header in every packet)") \
    X(L4_TRUNCATED,       "l4_truncated",       "TCP/UDP/ICMP header runs past the IPv4 payload") \
    X(TCP_DOFF,           "tcp_doff",           "TCP data offset below 5 or past the IPv4 payload") \
    X(UDP_LENGTH,         "udp_length",         "UDP length field disagrees with the IPv4 payload") \
    X(PROTO,              "proto",              "IP protocol other than TCP, UDP or ICMP") \
    X(ICMP_TYPE,          "icmp_type",          "ICMP type that is neither echo nor an error quoting a flow") \
    X(ICMP_INNER,         "icmp_inner",         "ICMP error whose quoted header is malformed") \
    X(ICMP_NO_FLOW,       "icmp_no_flow",       "ICMP error quoting a packet of no known flow") \
    X(NO_SERVICE,         "no_service",         "new flow to an address/protocol/port no service listens on") \
    X(SERVICE_DISABLED,   "service_disabled",   "service is disabled (endpoint pending acceptance or rejected)") \
    X(NOT_SYN,            "not_syn",            "TCP segment that is not a SYN and matches no flow") \
    X(NO_FLOW,            "no_flow",            "packet on the backend side matching no flow (backends cannot open flows)") \
    X(LINK_ONE_WAY,       "link_one_way",       "SYN or datagram toward a VPC link ENI: the customer side cannot open flows over a link") \
    X(SG_INGRESS,         "sg_ingress",         "refused by the ingress port's security group rules") \
    X(SG_EGRESS,          "sg_egress",          "refused by the egress port's security group rules") \
    X(NO_BACKEND,         "no_backend",         "service has no backend to choose") \
    X(TARGET_RESET,       "target_reset",       "flow's target was reported unhealthy: the connection is reset") \
    X(FLOW_TABLE_FULL,    "flow_table_full",    "new flow refused: the flow table is full") \
    X(PORT_ALLOCATION,    "port_allocation",    "new flow refused: no free SNAT port (ErrorPortAllocation)") \
    X(MTU,                "mtu",                "packet larger than the service's MTU (no ICMP is sent, as on AWS)") \
    X(GSO_NO_OFFLOAD,     "gso_no_offload",     "GSO frame from a caller that cannot hand a partial checksum on") \
    X(PROXY_SYN_DATA,     "proxy_syn_data",     "SYN with data (TCP Fast Open) to a PROXY v2 service: the header must come first; the client sends it again after the handshake") \
    X(PROXY_NO_ROOM,      "proxy_no_room",      "first segment of a PROXY v2 flow with no room for the header and one byte of its data")

#define HP_EVENT_COUNTERS(X)                                                                 \
    X(RX_PACKETS,         "rx_packets",         "frames handed to the engine on this port") \
    X(RX_BYTES,           "rx_bytes",           "bytes handed to the engine on this port") \
    X(TX_PACKETS,         "tx_packets",         "frames the engine sent out of this port") \
    X(TX_BYTES,           "tx_bytes",           "bytes the engine sent out of this port") \
    X(DROPPED,            "dropped",            "frames dropped on arrival at this port (sum of the drop reasons)") \
    X(ARP_REPLIES,        "arp_replies",        "ARP replies built for the port's addresses") \
    X(TCP_RST_SENT,       "tcp_rst_sent",       "RSTs answered to segments of unknown or expired flows") \
    X(FLOWS_CREATED,      "flows_created",      "flows created by packets arriving on this port") \
    X(FLOWS_EXPIRED,      "flows_expired",      "flows of this port's services removed after their idle timeout") \
    X(EVICTED_PORT_POOL,  "evicted_port_pool",  "half-open flows of this port's services evicted, oldest first, to give a new flow their SNAT port (no free port for that destination)") \
    X(EVICTED_TABLE_FULL, "evicted_table_full", "half-open flows of this port's services evicted, oldest first, to give a new flow their slot (flow table full)") \
    X(MSS_CLAMPED,        "mss_clamped",        "SYNs whose MSS option was lowered to fit the service MTU (and a PROXY v2 header)") \
    X(CSUM_COMPLETED,     "csum_completed",     "frames whose partial L4 checksum was completed in full") \
    X(CSUM_KEPT_PARTIAL,  "csum_kept_partial",  "frames whose partial L4 checksum was left to the transmit path") \
    X(GSO_FRAMES,         "gso_frames",         "GSO frames (several segments in one frame) forwarded") \
    X(PROXY_HEADERS,      "proxy_headers",      "PROXY v2 headers put in front of a flow's first segment (its retransmissions included)") \
    X(PROXY_TRIMMED,      "proxy_trimmed",      "first segments of PROXY v2 flows cut at their tail to fit the header (TCP sends the rest again)") \
    X(TAP_DROPPED,        "tap_dropped",        "tap records of frames that arrived here not kept: the tap's ring was full (its reader was too slow)")

#endif
