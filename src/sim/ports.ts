// Device ports served by every simulated phone's built-in test services.
export const ECHO_PORT = 7;
export const SINK_PORT = 9;
export const SOURCE_PORT = 19;
export const LOCKDOWN_PORT = 62078;
