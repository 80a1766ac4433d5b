"""Every interval, timeout and rate of the Oracle VM layer, each with where it comes from.

Sources:
  [o2hb]  Linux fs/ocfs2/cluster/heartbeat.h (OCFS2's disk heartbeat, the O2CB stack
          Oracle VM 2.x clusters with): O2HB_REGION_TIMEOUT_MS 2000, O2HB_DEFAULT_DEAD_THRESHOLD 31,
          O2HB_MAX_WRITE_TIMEOUT_MS = O2HB_REGION_TIMEOUT_MS * (dead_threshold - 1).
  [o2cb]  ocfs2-tools' /etc/default/o2cb defaults: O2CB_HEARTBEAT_THRESHOLD=31,
          O2CB_IDLE_TIMEOUT_MS=30000, O2CB_KEEPALIVE_DELAY_MS=2000, O2CB_RECONNECT_DELAY_MS=2000.
  [ovm21] Oracle VM Server User's Guide 2.1 (E10898), ch. 9 "High Availability" and app. D
          "Oracle VM Agent Architecture" (roles; NFS heartbeat file /OVS/.server_pool_hb).
  [ovm22] Oracle VM Server User's Guide 2.2 (E15444), ch. 7: HA must be on for the pool AND the guest.
  [ovm3]  Oracle VM 3 Concepts Guide, "What is Oracle VM Agent?": the agent listens on TCP 8899
          (the same ovs-agent daemon as in 2.x).
  [eth]   IEEE 802.3 gigabit Ethernet, 1000 Mbit/s; TCP payload 1448 of 1538 bytes on the wire.
  [fc]    4GFC (FC-PI-2): 4.25 GBaud, 8b/10b, rated 400 MB/s per direction.
"""

from __future__ import annotations

AGENT_PORT = 8899                      # [ovm3]

# --- heartbeats and timeouts -------------------------------------------------------
DISK_HB_INTERVAL_S = 2.0               # [o2hb] O2HB_REGION_TIMEOUT_MS = 2000
DISK_HB_DEAD_THRESHOLD = 31            # [o2hb] O2HB_DEFAULT_DEAD_THRESHOLD, [o2cb] O2CB_HEARTBEAT_THRESHOLD
DISK_HB_TIMEOUT_S = DISK_HB_INTERVAL_S * (DISK_HB_DEAD_THRESHOLD - 1)   # 60 s: [o2hb] O2HB_MAX_WRITE_TIMEOUT_MS
NET_KEEPALIVE_S = 2.0                  # [o2cb] O2CB_KEEPALIVE_DELAY_MS = 2000
NET_IDLE_TIMEOUT_S = 30.0              # [o2cb] O2CB_IDLE_TIMEOUT_MS = 30000
NFS_HEARTBEAT_FILE = ".server_pool_hb"  # [ovm21] the heartbeat file of an NFS cluster root

# --- things vmlab had to choose ------------------------------------------------------
# (A fenced or failed server stays out until `heal()`; agent requests take no simulated time.)
GUEST_BOOT_S = 30.0                    # ILLUSTRATIVE: a restarted guest boots from its disk image
IMAGE_BLOCK_MIB = 4                    # ILLUSTRATIVE: the model tracks disk images in 4 MiB extents
GUEST_DISK_WRITES_PER_S = 0.5          # ILLUSTRATIVE: extents a running guest rewrites per second (2 MiB/s)
TEMPLATE_IMAGE_MIB = 4096              # ILLUSTRATIVE: a template's System.img

# --- storage throughput of a copy by the Utility Server (bytes/s) ---------------------
# NFS and iSCSI over gigabit Ethernet: TCP goodput 1000e6/8 * 1448/1538 [eth]. Ethernet is
# full duplex: the read (in) and the write (out) overlap, so a copy takes size / goodput.
GIGABIT_GOODPUT_BPS = 1000e6 / 8 * 1448 / 1538
FC_4G_BPS = 400e6                      # [fc] full duplex as well
LOCAL_DISK_BPS = 100e6                 # ILLUSTRATIVE: one SATA disk; read and write share the spindle
