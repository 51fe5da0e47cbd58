export { ADMIN_PREFIX, type AdminApi, AdminApiError, handleAdminRequest } from './admin.js';
export { BoundedEventStore } from './event-store.js';
export { isAllowedHost, isAllowedOrigin } from './guards.js';
export { type HttpAuthenticator, type HttpFront, type HttpFrontOptions, serveGatewayOverHttp } from './http.js';
export { GatewayStdioTransport, type StdioFront, type StdioFrontOptions, serveGatewayOverStdio } from './stdio.js';
