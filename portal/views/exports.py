"""Finance exports: choose what and a period, get CSV or XLSX."""

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from accounts.caller import caller
from accounts.models import Role
from config.replica import reads_from_replica
from portal import access
from portal.exports import EXPORTS, export_csv_lines, export_xlsx
from portal.forms import ExportForm

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@access.role(Role.FINANCE)
@reads_from_replica
def exports(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.GET or None)
    if request.GET and form.is_valid():
        data = form.cleaned_data
        export = EXPORTS[data["what"]]
        start, end = data["start"], data["end"]
        name = f"{export.name}-{start.isoformat()}-{end.isoformat()}"
        response: HttpResponse | StreamingHttpResponse
        if data["file_format"] == "xlsx":
            response = HttpResponse(export_xlsx(export, start, end, user=caller(request)), content_type=XLSX_TYPE)
            response["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
        else:
            response = StreamingHttpResponse(
                export_csv_lines(export, start, end, user=caller(request)), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response  # type: ignore[return-value]
    return render(request, "portal/exports.html", {"form": form}, status=400 if form.errors else 200)
