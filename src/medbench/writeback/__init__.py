"""Coded images back as DICOM: headers (:mod:`.header`) and the run export (:mod:`.export`)."""

from medbench.writeback.export import ExportResult, check_out_folder, export_run

__all__ = ["ExportResult", "check_out_folder", "export_run"]
