"""Google Sheets adapter: the strategist's live signal sheet (gspread, raw cell text)."""
