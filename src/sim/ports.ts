// Device ports served by every simulated phone's built-in test services.
export const ECHO_PORT = 7;
export const SINK_PORT = 9;
export const SOURCE_PORT = 19;
export const LOCKDOWN_PORT = 62078;
// Lockdown services (StartService hands these out): fixed device ports in the
// dynamic range, where real phones put theirs (reference §1.9 item 8).
export const HEARTBEAT_PORT = 49152;
export const NOTIFICATION_PROXY_PORT = 49153;
