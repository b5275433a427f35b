"""What the warehouse prints for a wave: the data of each document (`documents`) and its
renderings (HTML with print CSS, PDF, CSV, XLSX, 80 mm and 58 mm thermal text and ESC/POS
bytes), one entry point (`render.render_document`) for the CLI and the web, and the sending of
ESC/POS to a network printer (`printers`)."""
