"""The operator's console: the admin_api HTTP function (JSON API and status page).

- `app`: the Flask app, request ids, CORS, security headers, error mapping;
- `registry`: the route table, the one source of the routes and the OpenAPI document;
- `auth`: operator login, signed tokens, the page's session cookie, the PIN gate;
- `api/`: the endpoints, one module per area;
- `page`: the server-rendered status page.
"""
