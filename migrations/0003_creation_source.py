from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_creation_result')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Creation',
            name='cache_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Creation',
            name='source',
            field=fields.ForeignKeyField('models.Creation', source_field='source_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
    ]
