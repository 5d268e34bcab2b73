"""Coded images back as DICOM: headers (:mod:`.header`), the export folder (:mod:`.folder`)
and the run export (:mod:`.export`)."""

from medbench.writeback.export import ExportResult, check_run_export, codecs_writable, export_run
from medbench.writeback.folder import check_out_folder

__all__ = ["ExportResult", "check_out_folder", "check_run_export", "codecs_writable",
           "export_run"]
