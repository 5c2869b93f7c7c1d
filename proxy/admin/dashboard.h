/*
 * proxy/admin/dashboard.h: the admin port's live dashboard page (GET /), one self-contained
 * HTML document with inline CSS and JS and no external resources.
 *
 * The page polls /memory and /memory/regions every second (sending the bearer token given
 * as `#token=...` in its URL), keeps five minutes of history and draws totals and per-thread
 * bytes over time, a size-class histogram and the top memory holders. It writes
 * `data-samples`, `data-regions`, `data-polls` and `data-errors` on <body> so tests can see
 * from the DOM that it drew live data. Read-only static data: any thread.
 */
#ifndef PX_ADMIN_DASHBOARD_H
#define PX_ADMIN_DASHBOARD_H

#include "mem/base.h"

extern const char px_admin_dashboard_html[];
extern const size_t px_admin_dashboard_html_len;

#endif /* PX_ADMIN_DASHBOARD_H */
