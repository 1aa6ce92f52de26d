export { OpenAIServer, startServer, type ServerOptions } from "./server.js";
export { ApiError } from "./requests.js";
