// Device ports served by every simulated phone. The test services sit on the
// classic echo, discard and chargen ports; lockdown services have no fixed
// port (StartService hands out a fresh one each time, src/sim/service-ports.ts).
export const ECHO_PORT = 7;
export const SINK_PORT = 9;
export const SOURCE_PORT = 19;
export const LOCKDOWN_PORT = 62078;

/** The test services' names in the phone's registry namespace. */
export const ECHO_SERVICE = 'com.tsmuxd.test.echo';
export const SINK_SERVICE = 'com.tsmuxd.test.sink';
export const SOURCE_SERVICE = 'com.tsmuxd.test.source';
